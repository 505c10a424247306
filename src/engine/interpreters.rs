//! Finds the Python and Node.js interpreters and their versions, once at start.

use crate::domain::runtime::{Interpreter, Interpreters, parse_version};
use std::time::Duration;
use tokio::process::Command;

/// Asks each interpreter for its version; one that is missing or does not answer is reported
/// as not found, so its runtimes show as unavailable rather than failing later.
pub async fn detect(python: &str, node: &str) -> Interpreters {
    let (python, nodejs) = tokio::join!(probe(python), probe(node));
    Interpreters { python, nodejs }
}

async fn probe(command: &str) -> Option<Interpreter> {
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(command)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let output = match output {
        Ok(Ok(output)) if output.status.success() => output,
        Ok(Ok(output)) => {
            tracing::warn!(command, status = %output.status, "interpreter did not report a version");
            return None;
        }
        Ok(Err(e)) => {
            tracing::warn!(command, error = %e, "interpreter not found");
            return None;
        }
        Err(_) => {
            tracing::warn!(command, "interpreter did not answer --version within 10 s");
            return None;
        }
    };
    // Python 2 printed its version on stderr; read both.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let version = parse_version(&text)?;
    tracing::info!(command, ?version, "interpreter found");
    Some(Interpreter {
        command: command.to_string(),
        version,
    })
}
