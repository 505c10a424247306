//! Functions of different teams on one console, one of them hostile: what it tries against its
//! neighbours, and that each attempt fails, fails only its own event, and leaves the neighbour
//! running. As root, every function runs as a user of its own; not as root there is nothing
//! to isolate with, and these stories are skipped with a message.

use crate::engine::{function, invoke, shared_dir, until_started, until_status};
use crate::support::*;
use scf_console::domain::event::EventStatus;
use serde_json::{Value, json};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const SECRET: &str = "the-db-password-7f3a";

/// A neighbour holding a secret in its environment, busy for as long as the event asks.
const VICTIM: &str = r#"
import os, time
def main_handler(event, context):
    with open(os.path.join(os.environ["TMPDIR"], "notes.txt"), "w") as f:
        f.write("private scratch of the victim")
    time.sleep(event.get("sleep", 0))
    return {"tmpdir": os.environ["TMPDIR"], "cwd": os.getcwd(), "pid": os.getpid()}
"#;

/// Everything a hostile handler can try with the standard library alone.
const ATTACKER: &str = r#"
import ctypes, os, signal
def contains(data, head, tail):
    at = data.find(head)
    while at >= 0:
        if data[at + len(head):at + len(head) + len(tail)] == tail:
            return True
        at = data.find(head, at + 1)
    return False

def main_handler(event, context):
    # The secret comes in two halves and is never put together here, so finding it whole in
    # this process's memory means it came from somewhere else.
    head, tail = event["head"].encode(), event["tail"].encode()
    found = {"environ": [], "killed": [], "traced": [], "read": [], "listed": [], "memory": False,
             "seen": []}
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/status") as f:
                uid = int(f.read().split("Uid:")[1].split()[0])
            if uid != os.getuid():
                found["seen"].append(pid)
        except (OSError, IndexError, ValueError):
            pass
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if contains(f.read(), head, tail):
                    found["environ"].append(pid)
        except OSError:
            pass
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"bootstrap" in cmd or b"zygote" in cmd:
            try:
                os.kill(pid, 0)
                found["killed"].append(pid)
            except OSError:
                pass
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
                found["traced"].append(pid)
                libc.ptrace(17, pid, 0, 0)  # PTRACE_DETACH
    for path in event["paths"]:
        try:
            with open(path, "rb") as f:
                f.read()
            found["read"].append(path)
        except OSError:
            pass
    for folder in [os.path.dirname(os.getcwd())] + event["folders"]:
        try:
            os.listdir(folder)
            found["listed"].append(folder)
        except OSError:
            pass
    # Whatever the fork server held for earlier instances is in a forked child's memory too:
    # read every readable private mapping of this process in place.
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    for parts in regions:
        perms, name = parts[1], parts[5] if len(parts) > 5 else ""
        if not perms.startswith("r") or name.startswith("[v") or name.startswith("/"):
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if end - start > 512 * 1024 * 1024:
            continue
        if contains(ctypes.string_at(start, end - start), head, tail):
            found["memory"] = True
    return found
"#;

/// A victim holding a secret runs; a hostile function, started after it, looks for the secret
/// in every process's environment and in its own memory, signals and traces the victim's
/// processes, reads its code and scratch files and lists the folders around its own. Nothing
/// works, and the victim's event finishes.
#[tokio::test]
async fn a_hostile_function_cannot_reach_its_neighbour() {
    if !is_root() {
        eprintln!("SKIPPED: isolation between functions needs the server to run as root");
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let secret_env = json!({"Environment": {"Variables": [{"Key": "SECRET", "Value": SECRET}]},
                            "Timeout": 60});
    function(&app, "victim", "Python3.10", VICTIM, secret_env).await;
    function(
        &app,
        "attacker",
        "Python3.10",
        ATTACKER,
        json!({"Timeout": 60}),
    )
    .await;

    // The victim's first event tells where its files are; the second keeps it busy.
    let first = invoke(&app, "victim", json!({})).await;
    let done = until_status(&app, &first, EventStatus::Finished).await;
    let where_: Value = serde_json::from_str(&done.result.unwrap()).unwrap();
    let scratch = where_["tmpdir"].as_str().unwrap().to_string();
    assert_eq!(
        scratch, "/tmp",
        "the victim's temp folder is a /tmp of its own"
    );
    let code = where_["cwd"].as_str().unwrap().to_string();
    let busy = invoke(&app, "victim", json!({"sleep": 4})).await;
    until_started(&app, &busy).await;

    let attack = invoke(
        &app,
        "attacker",
        json!({
            "head": &SECRET[..10],
            "tail": &SECRET[10..],
            "paths": [format!("{code}/index.py"), format!("{scratch}/notes.txt")],
            "folders": [code],
        }),
    )
    .await;
    let e = crate::engine::until_ended(&app, &attack).await;
    assert_eq!(
        e.status,
        EventStatus::Finished,
        "{:?} {:?}",
        e.error,
        e.logs
    );
    let found: Value = serde_json::from_str(&e.result.unwrap()).unwrap();
    assert_eq!(
        found["environ"],
        json!([]),
        "another function's environment"
    );
    assert_eq!(found["killed"], json!([]), "signalled a neighbour: {found}");
    assert_eq!(found["traced"], json!([]), "traced a neighbour: {found}");
    assert_eq!(
        found["read"],
        json!([]),
        "read a neighbour's files: {found}"
    );
    assert_eq!(
        found["listed"],
        json!([]),
        "listed folders it has no business in: {found}"
    );
    assert_eq!(
        found["memory"], false,
        "the secret is in the attacker's own memory"
    );

    let victim = until_status(&app, &busy, EventStatus::Finished).await;
    assert_eq!(victim.status_code, Some(200));
}

/// Two functions never share a user: what one can do to its own processes it cannot do to
/// the other's, whatever runtime each uses.
#[tokio::test]
async fn each_function_runs_as_a_user_of_its_own() {
    if !is_root() {
        eprintln!("SKIPPED: isolation between functions needs the server to run as root");
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let python = "import os\ndef main_handler(event, context):\n    return {'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups()}\n";
    let node = "exports.main_handler = async () => ({uid: process.getuid(), gid: process.getgid(), groups: process.getgroups()});\n";
    function(&app, "one", "Python3.10", python, json!({})).await;
    function(&app, "two", "Python3.10", python, json!({})).await;
    function(&app, "three", "Nodejs18.15", node, json!({})).await;
    let mut uids = Vec::new();
    for name in ["one", "two", "three"] {
        let id = invoke(&app, name, json!({})).await;
        let e = until_status(&app, &id, EventStatus::Finished).await;
        let r: Value = serde_json::from_str(&e.result.unwrap()).unwrap();
        let uid = r["uid"].as_u64().unwrap();
        assert!((200_000..300_000).contains(&uid), "{name}: {r}");
        assert_eq!(r["gid"], r["uid"], "{name}: {r}");
        let groups: Vec<u64> = serde_json::from_value(r["groups"].clone()).unwrap();
        assert!(
            groups.iter().all(|g| *g == uid),
            "{name}: no supplementary groups: {r}"
        );
        uids.push(uid);
    }
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 3, "three functions, three users");
}

/// Whether instances get control groups here: as root, with the memory and pids controllers.
fn has_cgroups() -> bool {
    if !is_root() {
        eprintln!("SKIPPED: control groups for instances need the server to run as root");
        return false;
    }
    match scf_console::engine::runtime::cgroup::Controllers::detect() {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no control groups in CI: {why}"
            );
            eprintln!("SKIPPED: no control groups for instances here: {why}");
            false
        }
    }
}

/// A Python and a Node.js function with 128 MB each try to take far more, the Node.js one
/// outside its JavaScript heap; each is stopped with a message that says why, and a
/// neighbour's event running meanwhile finishes.
#[tokio::test]
async fn a_function_over_its_memory_is_stopped_and_fails_alone() {
    if !has_cgroups() {
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let python = "def main_handler(event, context):\n    hoard = []\n    for _ in range(30):\n        hoard.append(b'x' * (10 * 1024 * 1024))\n    return len(hoard)\n";
    let node = "exports.main_handler = async () => {\n  const hoard = [];\n  for (let i = 0; i < 60; i++) hoard.push(Buffer.alloc(10 * 1024 * 1024, 1));\n  return hoard.length;\n};\n";
    let calm =
        "import time\ndef main_handler(event, context):\n    time.sleep(1)\n    return 'fine'\n";
    let limits = json!({"MemorySize": 128, "Timeout": 60});
    function(&app, "greedy-py", "Python3.10", python, limits.clone()).await;
    function(&app, "greedy-js", "Nodejs18.15", node, limits.clone()).await;
    function(&app, "calm", "Python3.10", calm, limits).await;
    let neighbour = invoke(&app, "calm", json!({})).await;
    for name in ["greedy-py", "greedy-js"] {
        let id = invoke(&app, name, json!({})).await;
        let e = crate::engine::until_ended(&app, &id).await;
        assert_eq!(e.status, EventStatus::Failed, "{name}: {:?}", e.result);
        assert_eq!(e.status_code, Some(439), "{name}");
        let error = e.error.unwrap_or_default();
        assert!(
            error.contains("more memory than its MemorySize allows (128 MB"),
            "{name}: {error}"
        );
    }
    let e = until_status(&app, &neighbour, EventStatus::Finished).await;
    assert_eq!(e.result.as_deref(), Some(r#""fine""#));
}

/// A handler starts a process that leaves its session and its parent, and returns: the
/// process dies with the event, not 180 s later.
#[tokio::test]
async fn what_a_handler_detaches_dies_with_its_event() {
    if !has_cgroups() {
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let shared = shared_dir();
    let lock = shared.path().join("escaped.lock");
    // The grandchild holds a lock on the file for as long as it lives.
    let code = r#"
import fcntl, os, time
def main_handler(event, context):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork():
            os._exit(0)
        f = open(event["lock"], "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("held")
        f.flush()
        time.sleep(180)
        os._exit(0)
    os.waitpid(pid, 0)
    while not os.path.getsize(event["lock"]) if os.path.exists(event["lock"]) else True:
        time.sleep(0.01)
    return "detached"
"#;
    function(&app, "escape", "Python3.10", code, json!({"Timeout": 30})).await;
    let id = invoke(&app, "escape", json!({"lock": lock})).await;
    until_status(&app, &id, EventStatus::Finished).await;
    wait_for(
        "the detached process to die with its event",
        std::time::Duration::from_secs(5),
        || async { (!still_locked(&lock)).then_some(()) },
    )
    .await;
    // The instance itself lives on, warm, for the next event.
    let again = invoke(&app, "escape", json!({"lock": lock})).await;
    until_status(&app, &again, EventStatus::Finished).await;
}

/// A handler starts processes until it cannot: it stops at the instance's process limit,
/// its event ends as the handler decides, and what it started dies with the event.
#[tokio::test]
async fn processes_stop_at_the_instance_limit() {
    if !has_cgroups() {
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let code = r#"
import subprocess
def main_handler(event, context):
    started = []
    try:
        for _ in range(300):
            started.append(subprocess.Popen(["sleep", "30"]))
    except OSError as e:
        return {"started": len(started), "error": type(e).__name__}
    return {"started": len(started), "error": None}
"#;
    function(&app, "bomb", "Python3.10", code, json!({"Timeout": 30})).await;
    let id = invoke(&app, "bomb", json!({})).await;
    let e = until_status(&app, &id, EventStatus::Finished).await;
    let r: Value = serde_json::from_str(&e.result.unwrap()).unwrap();
    let started = r["started"].as_u64().unwrap();
    assert!(
        (10..128).contains(&started),
        "the limit of 128 processes and threads per instance holds: {r}"
    );
    assert!(r["error"].is_string(), "{r}");
}

/// One function leaves files in every shared temporary folder, a module for another's
/// `require` among them; the other function sees none of it: its `/tmp` (its TMPDIR, of SCF's
/// 512 MB), `/var/tmp` and `/dev/shm` are its own and empty, and the server's data folder is
/// out of sight.
#[tokio::test]
async fn every_instance_has_temp_folders_of_its_own() {
    if !is_root() {
        eprintln!("SKIPPED: private temp folders need the server to run as root");
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let planter = r#"
import os
def main_handler(event, context):
    os.makedirs("/tmp/node_modules/evil", exist_ok=True)
    with open("/tmp/node_modules/evil/index.js", "w") as f:
        f.write("module.exports = 'planted';")
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        with open(os.path.join(folder, event["name"]), "wb") as f:
            f.write(b"x" * 1024 * 1024)
    return os.environ["TMPDIR"]
"#;
    let looker = r#"
const fs = require('fs');
exports.main_handler = async () => {
  let required;
  try { required = require('evil'); } catch (e) { required = e.code; }
  const seen = {};
  for (const folder of ['/tmp', '/var/tmp', '/dev/shm']) seen[folder] = fs.readdirSync(folder);
  const stat = fs.statfsSync('/tmp');
  return { required, seen, tmpdir: process.env.TMPDIR, tmp_mb: Math.round(stat.blocks * stat.bsize / 1048576) };
};
"#;
    function(&app, "planter", "Python3.10", planter, json!({})).await;
    function(&app, "looker", "Nodejs18.15", looker, json!({})).await;
    let name = format!("left-behind-{}", uuid::Uuid::new_v4());
    let planted = invoke(&app, "planter", json!({"name": name})).await;
    let e = until_status(&app, &planted, EventStatus::Finished).await;
    assert_eq!(e.result.as_deref(), Some(r#""/tmp""#));
    let look = invoke(&app, "looker", json!({})).await;
    let e = until_status(&app, &look, EventStatus::Finished).await;
    let r: Value = serde_json::from_str(&e.result.unwrap()).unwrap();
    assert_eq!(r["required"], "MODULE_NOT_FOUND", "{r}");
    assert_eq!(r["tmpdir"], "/tmp");
    assert_eq!(r["tmp_mb"], 512, "{r}");
    for folder in ["/var/tmp", "/dev/shm"] {
        assert_eq!(r["seen"][folder], json!([]), "{folder}: {r}");
    }
    // /tmp holds only the runtime folder, mounted back read-only for the code.
    let tmp: Vec<String> = serde_json::from_value(r["seen"]["/tmp"].clone()).unwrap();
    assert!(
        tmp.iter().all(|name| name.starts_with("scf-console-")),
        "{tmp:?}"
    );
    // Nothing either left is on the machine's own folders.
    for folder in ["/var/tmp", "/dev/shm"] {
        assert!(!std::path::Path::new(folder).join(&name).exists());
    }
}

/// Reaches for the console from inside a handler, lists its network interfaces, and talks to
/// itself over loopback.
const NETWORK_PY: &str = r#"
import socket
def main_handler(event, context):
    out = {"interfaces": [name for _, name in socket.if_nameindex()]}
    try:
        with socket.create_connection((event["host"], event["port"]), timeout=5) as s:
            s.sendall(b"GET /scf HTTP/1.0\r\nHost: " + event["host"].encode() + b"\r\n\r\n")
            out["console"] = s.recv(64).split(b" ")[1].decode()
    except OSError as e:
        out["console"] = f"{type(e).__name__}: {e}"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            out["loopback"] = "ok"
    return out
"#;

const NETWORK_JS: &str = r#"
const net = require('net');
exports.main_handler = (event) => new Promise((resolve) => {
  const s = net.connect(event.port, event.host);
  s.setTimeout(5000);
  s.on('connect', () => s.write(`GET /scf HTTP/1.0\r\nHost: ${event.host}\r\n\r\n`));
  s.on('data', (d) => { resolve({console: d.toString().split(' ')[1]}); s.destroy(); });
  s.on('timeout', () => { resolve({console: 'timeout'}); s.destroy(); });
  s.on('error', (e) => resolve({console: e.code}));
});
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_function_without_public_network_reaches_nothing_but_itself() {
    if !is_root() {
        eprintln!("SKIPPED: a network of an instance's own needs the server to run as root");
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let url = app.serve().await;
    let (host, port) = url
        .trim_start_matches("http://")
        .split_once(':')
        .map(|(h, p)| (h.to_string(), p.parse::<u16>().unwrap()))
        .unwrap();
    let sync = json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE"});
    let offline = json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE",
        "PublicNetConfig": {"PublicNetStatus": "DISABLE", "EipConfig": {"EipStatus": "DISABLE"}}});
    function(&app, "online", "Python3.10", NETWORK_PY, sync.clone()).await;
    function(&app, "offline", "Python3.10", NETWORK_PY, offline.clone()).await;
    function(&app, "offline-node", "Nodejs18.15", NETWORK_JS, offline).await;
    let run = |name: &'static str| {
        let app = &app;
        let event = json!({"host": host, "port": port}).to_string();
        async move {
            let answer = app
                .api(
                    "Invoke",
                    json!({"FunctionName": name, "ClientContext": event}),
                )
                .await;
            let result = &answer.ok()["Result"];
            assert_eq!(result["InvokeResult"], 0, "{name}: {result}");
            serde_json::from_str::<Value>(result["RetMsg"].as_str().unwrap()).unwrap()
        }
    };

    // With the network, the console is reachable, and asks for a login like to anyone.
    let online = run("online").await;
    assert_eq!(online["console"], "303", "{online}");
    assert_ne!(online["interfaces"], json!(["lo"]));

    // Without it, the instance has its loopback and nothing else: the console's address is
    // no one's there.
    let offline = run("offline").await;
    assert_eq!(offline["interfaces"], json!(["lo"]), "{offline}");
    assert!(
        offline["console"]
            .as_str()
            .unwrap()
            .starts_with("ConnectionRefusedError"),
        "{offline}"
    );
    assert_eq!(offline["loopback"], "ok");
    let node = run("offline-node").await;
    assert_eq!(node["console"], "ECONNREFUSED", "{node}");

    let got = app
        .api("GetFunction", json!({"FunctionName": "offline"}))
        .await;
    assert_eq!(got.ok()["PublicNetConfig"]["PublicNetStatus"], "DISABLE");
    // Turned back on, the next instance (of the saved configuration, a moment later) has the
    // network again.
    app.state.clock.advance(std::time::Duration::from_secs(1));
    app.api(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "offline", "PublicNetConfig": {"PublicNetStatus": "ENABLE"}}),
    )
    .await
    .ok();
    assert_eq!(run("offline").await["console"], "303");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_instance_sees_no_process_but_its_own() {
    if !is_root() {
        eprintln!("SKIPPED: a PID namespace per instance needs the server to run as root");
        return;
    }
    let app = TestApp::new().await;
    app.add_key().await;
    let sync = json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE", "Timeout": 30});
    let python = "import os, time\ndef main_handler(event, context):\n    time.sleep(event['sleep'])\n    return {'pid': os.getpid(), 'procs': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), 'no_new_privs': open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0]}\n";
    let node = "const fs = require('fs');\nexports.main_handler = async (event) => {\n  await new Promise((r) => setTimeout(r, event.sleep * 1000));\n  const status = fs.readFileSync('/proc/self/status', 'utf8');\n  return {pid: process.pid, procs: fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).map(Number).sort(), no_new_privs: status.match(/NoNewPrivs:\\s*(\\d)/)[1]};\n};\n";
    function(&app, "py", "Python3.10", python, sync.clone()).await;
    function(&app, "js", "Nodejs18.15", node, sync).await;
    let call = |name: &'static str| {
        let app = &app;
        async move {
            let answer = app
                .api(
                    "Invoke",
                    json!({"FunctionName": name, "ClientContext": "{\"sleep\": 1}"}),
                )
                .await;
            let result = &answer.ok()["Result"];
            assert_eq!(result["InvokeResult"], 0, "{name}: {result}");
            serde_json::from_str::<Value>(result["RetMsg"].as_str().unwrap()).unwrap()
        }
    };
    // Two instances of each function at once (forked and spawned ones), all of the same
    // function's user: each sees itself, as the second process of its own namespace, and
    // nothing else, not even the other instance of its function; and no program it runs can
    // gain privileges.
    let (a, b, c, d) = tokio::join!(call("py"), call("py"), call("js"), call("js"));
    for seen in [a, b, c, d] {
        assert_eq!(seen, json!({"pid": 2, "procs": [2], "no_new_privs": "1"}));
    }
}
