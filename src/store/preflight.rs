//! What is wrong with a data folder or database file, said before (or instead of) SQLite's own
//! terse codes: every message names the path, the cause and what to do about it.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Checks the folder and the file a database path names, creating the folder if missing.
pub fn check(db: &Path) -> anyhow::Result<()> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Its user's alone: the database in it holds code, environment values and SecretKeys.
    let created = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    if let Err(e) = created {
        anyhow::bail!(
            "cannot create the data folder {}: {e}. Choose a folder this user may write with \
             --data-dir (SCF_DATA_DIR), or create it and give this user write access.",
            dir.display()
        );
    }
    if !dir.is_dir() {
        anyhow::bail!(
            "the data folder {} is not a folder. Choose another with --data-dir (SCF_DATA_DIR).",
            dir.display()
        );
    }
    writable(&dir).map_err(|e| {
        anyhow::anyhow!(
            "the data folder {} is not writable ({e}); the database and its write-ahead log \
             live there. Give this user write access, remount it read-write, or choose another \
             folder with --data-dir (SCF_DATA_DIR).",
            dir.display()
        )
    })?;
    warn_if_shared(&dir);
    let meta = match std::fs::metadata(db) {
        Ok(m) => m,
        // A new database: SQLite creates it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => anyhow::bail!("cannot read the database {}: {e}", db.display()),
    };
    if meta.is_dir() {
        anyhow::bail!(
            "the database path {} is a folder, not a file. Move it away or point DATABASE_URL \
             at a file.",
            db.display()
        );
    }
    if meta.is_file() && meta.mode() & 0o077 != 0 {
        // SQLite gives its -wal and -shm files the database's own mode.
        tracing::warn!(
            "the database {} can be read by other users of this machine (mode {:o}); it holds \
             function code, environment values and API SecretKeys. Fix it with: chmod 600 {}",
            db.display(),
            meta.mode() & 0o777,
            db.display()
        );
    }
    if meta.len() == 0 {
        // SQLite would silently take an empty file as a new database, and an operator whose
        // backup or copy went wrong would see every function gone without a word.
        anyhow::bail!(
            "the database {} is empty (0 bytes), so it holds no scf-console data. If it should \
             hold your functions and events, restore it from a backup; to start afresh, delete \
             the file.",
            db.display()
        );
    }
    let mut header = [0u8; 16];
    let read = std::fs::File::open(db).and_then(|mut f| f.read(&mut header));
    match read {
        Ok(n) if n == header.len() && &header == SQLITE_HEADER => Ok(()),
        Ok(_) => anyhow::bail!(
            "{} is not an SQLite database (its first bytes are not SQLite's header). Point \
             DATABASE_URL or --data-dir at scf-console's database, or move this file away to \
             start afresh.",
            db.display()
        ),
        Err(e) => anyhow::bail!(
            "cannot read the database {}: {e}. Give this user read and write access to it.",
            db.display()
        ),
    }
}

/// A warning, not a refusal, for a data folder others may enter: it was made so on purpose,
/// perhaps, and the server still works; its modes are the operator's to change, never loosened
/// or tightened here.
fn warn_if_shared(dir: &Path) {
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    let mode = meta.mode();
    if mode & 0o077 == 0 {
        return;
    }
    let fix = if mode & libc::S_ISVTX != 0 {
        // A shared folder such as /tmp: chmod would break it for everyone else.
        "Keep the database in a folder of its own (--data-dir, SCF_DATA_DIR)".to_string()
    } else {
        format!("Fix it with: chmod 700 {}", dir.display())
    };
    tracing::warn!(
        "the data folder {} can be entered by other users of this machine (mode {:o}); the \
         database in it holds function code, environment values and API SecretKeys. {fix}",
        dir.display(),
        mode & 0o7777
    );
}

/// Whether this process may create files in `dir` (the write-ahead log and its index).
fn writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// SQLite's error at open, with the path and a fix.
pub fn explain(db: &Path, e: sqlx::Error) -> anyhow::Error {
    let code = match &e {
        sqlx::Error::Database(d) => d.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0),
        _ => 0,
    };
    let fix = match code & 0xff {
        5 | 6 => {
            "it is locked by another process (another scf-console, or a tool holding a \
             transaction open). Stop that process, or give this server its own --data-dir."
        }
        8 => {
            "it or its folder is read-only. Give this user write access, or remount the \
             folder read-write."
        }
        11 | 26 => {
            "it is damaged or not a database. Restore it from a backup, or move it away to \
             start afresh."
        }
        13 => "the disk is full. Free some space and start again.",
        14 => {
            "it cannot be opened: check that the folder exists and that this user may read and \
             write both the file and the folder (SQLite creates -wal and -shm files beside it)."
        }
        10 => "a disk I/O error occurred. Check the disk and the system log.",
        _ => "check that the file is scf-console's database and that this user may write it.",
    };
    anyhow::anyhow!("cannot open the database {}: {e}; {fix}", db.display())
}

/// A migration failure, with the path and a fix.
pub fn explain_migration(db: &Path, e: sqlx::migrate::MigrateError) -> anyhow::Error {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => explain(db, inner),
        sqlx::migrate::MigrateError::VersionMissing(v) => anyhow::anyhow!(
            "the database {} was written by a newer version of scf-console (it has migration \
             {v}, which this version does not know). Run that version or a newer one.",
            db.display()
        ),
        other => anyhow::anyhow!(
            "cannot prepare the database {}: {other}. Restore it from a backup if it was \
             changed by hand.",
            db.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_folder_is_its_users_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").join("scf");
        check(&data.join("scf-console.db")).unwrap();
        for folder in [data.parent().unwrap(), &data] {
            let mode = std::fs::metadata(folder).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", folder.display());
        }
        // One made open on purpose stays as it is: only a warning says so.
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        check(&data.join("scf-console.db")).unwrap();
        assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o777, 0o755);
    }

    #[test]
    fn empty_and_foreign_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("scf-console.db");
        check(&db).expect("a missing file is a new database");
        std::fs::write(&db, b"").unwrap();
        let e = check(&db).unwrap_err().to_string();
        assert!(e.contains("is empty (0 bytes)") && e.contains(&db.display().to_string()));
        std::fs::write(&db, b"name,value\n1,2\n3,4\n5,6\n").unwrap();
        let e = check(&db).unwrap_err().to_string();
        assert!(e.contains("is not an SQLite database"), "{e}");
        std::fs::remove_file(&db).unwrap();
        std::fs::create_dir(&db).unwrap();
        let e = check(&db).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
    }
}
