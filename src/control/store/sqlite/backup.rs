//! Copies of the database: an online backup (SQLite's backup API, retried while another connection holds the
//! source locked) written to a temporary file and renamed into place, and the restore of one.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use std::sync::atomic::{AtomicU64, Ordering};

use super::schema::schema_version;
use super::{locate, SqlContext, BACKUP_ATTEMPTS, BACKUP_PAUSE, SCHEMA_VERSION};
use crate::control::store::StoreError;

/// Opens an existing database for reading only; never creates a file.
pub(super) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).op("open for reading")
}

/// Checks that a backup is an intact vpcdns store whose schema this binary can open.
pub(super) fn check_restorable(conn: &Connection) -> Result<(), StoreError> {
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).op("check the backup")?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!("backup failed its integrity check: {check}")));
    }
    match schema_version(conn)? {
        0 => Err(StoreError::Corrupt("backup is not a vpcdns store (no schema)".into())),
        found if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION }),
        _ => Ok(()),
    }
}

/// Writes a consistent copy of `src` to `dest` atomically: into a temporary file in the same directory, synced,
/// then renamed over `dest`, then the directory synced so the rename itself survives power loss.
pub(super) fn write_copy(src: &Connection, dest: &Path) -> Result<(), StoreError> {
    let temp = temp_path(dest)?;
    remove_if_present(&temp)?;
    let result = copy_database(src, &temp).and_then(|()| sync_path(&temp)).and_then(|()| replace(&temp, dest));
    if result.is_err() {
        // Best effort: the error worth reporting is the one that stopped the copy.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// A fresh name beside `dest`, unique per process and call so that concurrent backups do not collide.
pub(super) fn temp_path(dest: &Path) -> Result<PathBuf, StoreError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name =
        dest.file_name().ok_or_else(|| StoreError::Invalid(format!("{} does not name a file", dest.display())))?;
    let unique = format!(".tmp-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(unique);
    Ok(dest.with_file_name(temp))
}

/// Copies every page of `src` into a new database at `path` in one backup step, which reads a single snapshot.
pub(super) fn copy_database(src: &Connection, path: &Path) -> Result<(), StoreError> {
    let label = path.display().to_string();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut dst = Connection::open_with_flags(path, flags).op("create the copy").map_err(|e| locate(e, &label))?;
    step_to_done(src, &mut dst).map_err(|e| locate(e, &label))?;
    // Rollback-journal mode makes the copy one self-contained file: nothing needs to travel beside it.
    let mode: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).op("finish the copy")?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::Corrupt(format!("{label}: copy kept journal_mode={mode}")));
    }
    dst.close().map_err(|(_, e)| e).op("close the copy").map_err(|e| locate(e, &label))
}

/// Runs the backup to completion, retrying while another connection holds the source locked.
pub(super) fn step_to_done(src: &Connection, dst: &mut Connection) -> Result<(), StoreError> {
    let backup = Backup::new(src, dst).op("start the copy")?;
    for _ in 0..BACKUP_ATTEMPTS {
        match backup.step(-1).op("copy pages")? {
            StepResult::Done => return Ok(()),
            StepResult::More => continue,
            _ => std::thread::sleep(BACKUP_PAUSE), // Busy or Locked: wait for the other connection
        }
    }
    let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
    Err(StoreError::Sqlite { op: "copy pages (source stayed locked)", path: String::new(), source: busy })
}

/// Moves the synced copy at `temp` over `dest`. Leftover journal files of whatever was at `dest` go first:
/// SQLite would replay a stale WAL or hot journal into the new file and corrupt it.
pub(super) fn replace(temp: &Path, dest: &Path) -> Result<(), StoreError> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut sidecar = dest.as_os_str().to_owned();
        sidecar.push(suffix);
        remove_if_present(Path::new(&sidecar))?;
    }
    fs::rename(temp, dest).map_err(|source| StoreError::Io {
        op: "rename the copy into place",
        path: dest.into(),
        source,
    })?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_path(dir)
}

pub(super) fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(StoreError::Io { op: "remove a stale file", path: path.into(), source: e })
        }
        _ => Ok(()),
    }
}

/// fsync of a file or directory (a directory's fsync makes the renames inside it durable).
pub(super) fn sync_path(path: &Path) -> Result<(), StoreError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|source| StoreError::Io {
        op: "sync",
        path: path.into(),
        source,
    })
}

/// True when both paths exist and resolve to the same file.
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b)
}
