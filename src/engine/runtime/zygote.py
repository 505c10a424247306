# scf-console's Python fork server. Starting an interpreter and importing what every instance
# needs costs more than the user's code usually does, so this process pays for it once and
# forks a child per instance: the child enters the sandbox (process group, descriptors 3 and
# 4, limits, the function's own user, environment, working folder), then runs the bootstrap,
# which loads the user's handler as usual. Requests arrive on fd 3, a SOCK_SEQPACKET socket,
# each with three descriptors: requests (read end), answers (write end) and the log (write
# end), and nothing else: the child reads what it is to become (the function's variables
# included) as the first line of its own request pipe. This process never holds a function's
# configuration, so no child can find another function's secrets in the memory it inherits.
# With --own-pids, each child is forked as the first process (pid 1) of a PID namespace of its
# own: it becomes the namespace's init and forks the interpreter (pid 2), the same two
# processes as init.rs makes for spawned instances, one fork fewer.
import ctypes
import errno
import json
import os
import resource
import signal
import socket
import sys

import bootstrap

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS = 0x00020000, 0x08000000, 0x04000000
CLONE_NEWNET, CLONE_NEWPID = 0x40000000, 0x20000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)
server = socket.socket(fileno=3)
LIMITS = {
    "as": resource.RLIMIT_AS,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
}


# With --own-pids: each child's status pipe (read end), on which its interpreter's wait
# status arrives.
statuses = {}


def report_exits(signum=None, frame=None):
    import struct
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_r = statuses.pop(pid, None)
        if status_r is not None:
            # The interpreter's own ending, written by the namespace's init before it ended;
            # nothing when the init itself was killed (the instance was).
            raw = os.read(status_r, 4)
            os.close(status_r)
            if len(raw) == 4:
                status = struct.unpack("i", raw)[0]
        server.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def read_setup():
    """The first line of the request pipe: what this child is to become. Nothing else is sent
    before the child says it is ready, so reading past the line cannot take a request."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(3, 65536)
        if not chunk:
            os._exit(127)
        data += chunk
    return json.loads(data)


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data):
    enc = lambda s: None if s is None else os.fsencode(s)
    check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def loopback_up():
    """`lo` starts down in a new network namespace; the handler may still talk to itself."""
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def enter_jail(jail, network):
    """The instance's private view of the file system (and without `network`, a network of
    its own): the same steps, in the same order, as Jail::enter in sandbox.rs, which spawned
    instances take."""
    root = jail["runtime_root"]
    own_network = 0 if network else CLONE_NEWNET
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | own_network
    check(libc.unshare(flags), "unshare")
    if not network:
        loopback_up()
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    # Opened in the new namespace: a folder of another one cannot be mounted from.
    held = os.open(root, os.O_PATH | os.O_DIRECTORY)
    flags = MS_NOSUID | MS_NODEV
    mount("tmpfs", "/tmp", "tmpfs", flags, f"size={jail['tmp_mb']}m,mode=1777")
    for small in ("/var/tmp", "/dev/shm"):
        if os.path.exists(small):
            mount("tmpfs", small, "tmpfs", flags, f"size={jail['small_tmp_mb']}m,mode=1777")
    mount("proc", "/proc", "proc", flags | MS_NOEXEC, "hidepid=invisible")
    if root.startswith("/tmp/"):
        path = "/tmp"
        for part in root[len("/tmp/"):].split("/"):
            path = os.path.join(path, part)
            os.mkdir(path, 0o711)
        mount(f"/proc/self/fd/{held}", root, None, MS_BIND | MS_REC, None)
        mount(None, root, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags, None)
    os.close(held)
    for hidden in jail["hidden"]:
        mount("tmpfs", hidden, "tmpfs", flags | MS_RDONLY | MS_NOEXEC, "size=4k,mode=0755")


def own_processes(status_w):
    """In pid 1 of the instance's namespace: forks the interpreter (pid 2), which returns
    from here, and reaps until it ends, orphans of what it started included. Then writes the
    interpreter's wait status for the fork server, which reports it as the instance's own,
    and ends, and the kernel kills whatever is left in the namespace. As pid 1 this process
    ignores the SIGTERM the server sends the instance's group: the interpreter decides."""
    import struct
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    interpreter = os.fork()
    if interpreter == 0:
        os.close(status_w)
        return
    os.closerange(0, status_w)
    os.closerange(status_w + 1, 65536)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == interpreter:
            os.write(status_w, struct.pack("i", status))
            os._exit(0)


def child(fds, status_w):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)
    requests, answers, log = fds
    os.dup2(requests, 3)
    os.dup2(answers, 4)
    os.dup2(log, 1)
    os.dup2(log, 2)
    # Nothing of this process's but the protocol's and the status pipe: not the descriptors
    # it received for this child, nor those it keeps for other children.
    if status_w is None:
        os.closerange(5, 65536)
    else:
        os.closerange(5, status_w)
        os.closerange(status_w + 1, 65536)
    request = read_setup()
    if request.get("jail"):
        enter_jail(request["jail"], request["network"])
    if status_w is not None:
        own_processes(status_w)
    for name, value in request["limits"].items():
        resource.setrlimit(LIMITS[name], (value, value))
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(request["gid"])
        os.setuid(request["uid"])
    # Set after the user change, which clears it: the instance dies with this server. And
    # nothing the handler executes may gain privileges (set-user-id programs).
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["bootstrap", request["module"], request["method"]]
    try:
        code = bootstrap.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def new_pid_namespace_for_next_child(own):
    """Makes the next child the first process of a fresh PID namespace: back to this
    process's own namespace for children (after the last child's), then a new one under it."""
    check(libc.setns(own, CLONE_NEWPID), "setns")
    check(libc.unshare(CLONE_NEWPID), "unshare")


def main():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    own_pids = "--own-pids" in sys.argv
    own = os.open("/proc/self/ns/pid", os.O_RDONLY) if own_pids else None
    signal.signal(signal.SIGCHLD, report_exits)
    while True:
        message, fds, _, _ = socket.recv_fds(server, 65536, 3)
        if not message:
            return
        request = json.loads(message)
        # Out of descriptors (the kernel drops what does not fit) or processes: say so, and
        # keep serving; the server tries again later.
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            server.send(json.dumps({"id": request["id"], "errno": errno.EMFILE}).encode())
            continue
        status_r = status_w = None
        try:
            if own_pids:
                new_pid_namespace_for_next_child(own)
                status_r, status_w = os.pipe()
            # Exits reported meanwhile find the new child's status pipe in place.
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
            pid = os.fork()
        except OSError as e:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
            for fd in [*fds, status_r, status_w]:
                if fd is not None:
                    os.close(fd)
            server.send(json.dumps({"id": request["id"], "errno": e.errno or errno.EAGAIN}).encode())
            continue
        if pid == 0:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
                if status_r is not None:
                    os.close(status_r)
                child(fds, status_w)
            finally:
                os._exit(127)
        if status_r is not None:
            os.close(status_w)
            statuses[pid] = status_r
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
        for fd in fds:
            os.close(fd)
        server.send(json.dumps({"id": request["id"], "pid": pid}).encode())


if __name__ == "__main__":
    main()
