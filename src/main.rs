use clap::Parser;
use scf_console::config::{Cli, Command, KeysCommand, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// glibc's allocator took a seventh of the server's time under load (`malloc`, `_int_free`,
/// `malloc_consolidate` between the runtime's threads and SQLite's); mimalloc's per-thread
/// heaps make the same allocations a few instructions each.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Started as an instance's init, this process is that and nothing else.
    scf_console::engine::runtime::init::run_if_asked();
    // Before the runtime, the store or anything else opens a file.
    let inherited = scf_console::process::keep_inherited_descriptors();
    scf_console::process::private_files();
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.settings.log_format {
        // Colours only on a terminal, so log files and pipes stay plain text.
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        // One object per line; the fields of the spans a line is in (the request, the event)
        // are flattened into it, so every line about an event carries its RequestId.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
    if let Err(e) = inherited {
        tracing::warn!(error = %e, "descriptors inherited from the parent could not be marked close-on-exec; function handlers may see them");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => scf_console::app::run(cli.settings).await,
        Command::Keys {
            action:
                KeysCommand::Create {
                    description,
                    user,
                    read_only,
                },
        } => {
            let store = scf_console::app::open_store(&cli.settings.database_url()).await?;
            let now = scf_console::clock::Clock::System.now_millis();
            scf_console::accounts::ensure_first_admin(
                &store,
                now,
                cli.settings.admin_password.as_deref(),
            )
            .await?;
            let key =
                scf_console::keys::create(store.as_ref(), &user, &description, read_only, now)
                    .await?;
            scf_console::audit::record_system(
                &store,
                now,
                "Create API key",
                &key.secret_id,
                &format!("ok: from the command line, owner {user}"),
            )
            .await;
            store.close().await;
            println!("SecretId:  {}", key.secret_id);
            println!("SecretKey: {}", key.secret_key);
            eprintln!("Keep the SecretKey safe: it is not shown again.");
            Ok(())
        }
    }
}
