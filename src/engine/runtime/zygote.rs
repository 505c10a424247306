//! The client side of the Python fork server (`zygote.py`): asks it for a sandboxed child per
//! instance, handing over the instance's pipes, and learns the child's pid and, later, how it
//! exited. Two threads own the socket: one sends requests, one reads answers.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

struct Request {
    id: u64,
    message: Vec<u8>,
    fds: Vec<OwnedFd>,
}

#[derive(Default)]
struct Waiting {
    pids: HashMap<u64, oneshot::Sender<io::Result<u32>>>,
    exits: HashMap<u32, oneshot::Sender<i32>>,
    /// Exits reported before anyone waited for them (a child can die before its pid arrives).
    early_exits: HashMap<u32, i32>,
}

pub struct Zygote {
    requests: Mutex<mpsc::Sender<Request>>,
    waiting: Arc<Mutex<Waiting>>,
    alive: Arc<AtomicBool>,
    next: AtomicU64,
    child: Mutex<Child>,
}

fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two new descriptors into the array on success.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn send_with_fds(socket: RawFd, message: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: message.as_ptr() as *mut libc::c_void,
        iov_len: message.len(),
    };
    // SAFETY: the header points at live buffers for the duration of the call, and the control
    // message is laid out with the CMSG_* helpers.
    unsafe {
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        header.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg) as *mut RawFd, fds.len());
        if libc::sendmsg(socket, &header, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Zygote {
    /// Starts the fork server with the given interpreter; it dies with this process. With
    /// `own_pids`, each child it forks is the first process of a PID namespace of its own.
    pub fn start(python: &str, runtime_dir: &Path, own_pids: bool) -> io::Result<Zygote> {
        let (ours, theirs) = seqpacket_pair()?;
        let theirs_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(python);
        cmd.arg("-u")
            .arg("-B")
            .arg(runtime_dir.join("zygote.py"))
            .args(own_pids.then_some("--own-pids"))
            .current_dir(runtime_dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("PYTHONPATH", runtime_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        // SAFETY: dup2 and prctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(theirs_fd, 3) < 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(theirs);

        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel::<Request>();
        let socket = Arc::new(ours);

        // The sender: one request at a time, in order.
        {
            let socket = Arc::clone(&socket);
            let waiting = Arc::clone(&waiting);
            let alive = Arc::clone(&alive);
            std::thread::Builder::new()
                .name("zygote-send".into())
                .spawn(move || {
                    for request in rx {
                        let fds: Vec<RawFd> = request.fds.iter().map(AsRawFd::as_raw_fd).collect();
                        if let Err(e) = send_with_fds(socket.as_raw_fd(), &request.message, &fds) {
                            alive.store(false, Ordering::SeqCst);
                            if let Some(reply) =
                                waiting.lock().expect("zygote").pids.remove(&request.id)
                            {
                                let _ = reply.send(Err(e));
                            }
                        }
                        // The child holds its own copies now; ours close here.
                        drop(request.fds);
                    }
                })?;
        }
        // The reader: pids of new children, and exits.
        {
            let waiting = Arc::clone(&waiting);
            let alive = Arc::clone(&alive);
            std::thread::Builder::new()
                .name("zygote-read".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        // SAFETY: reading into our own buffer from our own socket.
                        let n = unsafe {
                            libc::recv(
                                socket.as_raw_fd(),
                                buf.as_mut_ptr() as *mut libc::c_void,
                                buf.len(),
                                0,
                            )
                        };
                        if n <= 0 {
                            if n < 0
                                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                            {
                                continue;
                            }
                            break;
                        }
                        let Ok(answer) =
                            serde_json::from_slice::<serde_json::Value>(&buf[..n as usize])
                        else {
                            continue;
                        };
                        let mut w = waiting.lock().expect("zygote");
                        if let (Some(id), Some(pid)) =
                            (answer["id"].as_u64(), answer["pid"].as_u64())
                        {
                            if let Some(reply) = w.pids.remove(&id) {
                                let _ = reply.send(Ok(pid as u32));
                            }
                        } else if let (Some(id), Some(errno)) =
                            (answer["id"].as_u64(), answer["errno"].as_i64())
                        {
                            // The fork failed (no descriptors or processes left): an error the
                            // engine can tell apart from a broken fork server.
                            if let Some(reply) = w.pids.remove(&id) {
                                let _ = reply.send(Err(io::Error::from_raw_os_error(errno as i32)));
                            }
                        } else if let (Some(pid), Some(code)) =
                            (answer["exited"].as_u64(), answer["code"].as_i64())
                        {
                            match w.exits.remove(&(pid as u32)) {
                                Some(tx) => {
                                    let _ = tx.send(code as i32);
                                }
                                None => {
                                    w.early_exits.insert(pid as u32, code as i32);
                                }
                            }
                        }
                    }
                    alive.store(false, Ordering::SeqCst);
                    let mut w = waiting.lock().expect("zygote");
                    for (_, reply) in w.pids.drain() {
                        let _ = reply.send(Err(io::Error::other("the fork server stopped")));
                    }
                    w.exits.clear();
                })?;
        }
        Ok(Zygote {
            requests: Mutex::new(tx),
            waiting,
            alive,
            next: AtomicU64::new(1),
            child: Mutex::new(child),
        })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Forks a child for `request` (the zygote's JSON, without its id), handing it `fds`.
    /// Answers the child's pid and a receiver of its exit code (negative: killed by a signal).
    pub async fn fork(
        &self,
        mut request: serde_json::Value,
        fds: Vec<OwnedFd>,
    ) -> io::Result<(u32, oneshot::Receiver<i32>)> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        request["id"] = id.into();
        let (pid_tx, pid_rx) = oneshot::channel();
        self.waiting.lock().expect("zygote").pids.insert(id, pid_tx);
        let message = serde_json::to_vec(&request).map_err(io::Error::other)?;
        self.requests
            .lock()
            .expect("zygote")
            .send(Request { id, message, fds })
            .map_err(|_| io::Error::other("the fork server stopped"))?;
        let pid = pid_rx
            .await
            .map_err(|_| io::Error::other("the fork server stopped"))??;
        let (exit_tx, exit_rx) = oneshot::channel();
        let mut w = self.waiting.lock().expect("zygote");
        match w.early_exits.remove(&pid) {
            Some(code) => {
                let _ = exit_tx.send(code);
            }
            None => {
                w.exits.insert(pid, exit_tx);
            }
        }
        Ok((pid, exit_rx))
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
