//! What the process sets about itself before it opens anything: the files it creates are its
//! user's alone, and the descriptors it inherited stay with it.

use std::io;

/// Files and folders this process creates are readable by its user only: the database, and
/// the `-wal` and `-shm` files SQLite creates beside it whenever it needs them, hold every
/// function's code and environment and the API SecretKeys. Function instances inherit it
/// too; what they must read is given its mode explicitly (`engine::runtime::sandbox`).
pub fn private_files() {
    // SAFETY: umask only changes this process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Marks every descriptor above standard error close-on-exec: whatever the parent left open
/// (a socket, a log file, another program's database) must not reach a function handler,
/// which runs someone's code.
pub fn keep_inherited_descriptors() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on this process's own
    // descriptors.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11 lack the flag: each open descriptor, one by one. They are listed
    // first, as reading the folder opens one more (close-on-exec already).
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in open {
        // SAFETY: fcntl on a descriptor number; one closed meanwhile answers EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}
