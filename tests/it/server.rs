//! The real binary: starts on a fresh data folder, serves, and shuts down cleanly on Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_binary_creates_its_database_serves_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scf-console"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The log line that says where it listens is the readiness signal.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "the server did not start");
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(
        data.join("scf-console.db").exists(),
        "database created under the data folder"
    );

    let root = http_get(&addr, "/");
    assert!(root.starts_with("HTTP/1.1 303"), "{root}");
    assert!(
        root.contains("location: /scf/ap-guangzhou/default/functions"),
        "{root}"
    );
    let list = http_get(&addr, "/scf/ap-guangzhou/default/functions");
    assert!(list.starts_with("HTTP/1.1 200"));
    assert!(list.contains("Function Service"));

    // Ctrl-C (SIGINT) stops it cleanly.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit, got {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("scf-console stopped")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn keys_create_prints_a_key_that_the_store_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scf-console"))
        .args([
            "keys",
            "create",
            "--description",
            "ci deploys",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let (id, key) = (field("SecretId:"), field("SecretKey:"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not shown again"));

    let url = format!("sqlite://{}", dir.path().join("scf-console.db").display());
    let store = scf_console::store::open(&url).await.unwrap();
    let stored = store
        .get_api_key(&id)
        .await
        .unwrap()
        .expect("the key is stored");
    assert_eq!(stored.secret_key, key);
    assert_eq!(stored.description, "ci deploys");
    assert!(stored.enabled);
}
