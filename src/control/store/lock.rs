//! The embedded store's owner: a server holds an exclusive lock on `<store>.lock` for its whole life, so that
//! nothing else writes the store behind it — `vpcdns operator` falls back to running in-process only when no server
//! holds the lock, and `restore` only then replaces the file.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock, held until dropped (the kernel also lets go when the process dies).
pub(crate) struct StoreLock {
    _file: Flock<File>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("the store {store} is held by another process{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { store: PathBuf, holder: Option<u32> },
    #[error("cannot lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Where the lock of the store at `store` lives.
pub(crate) fn lock_path(store: &Path) -> PathBuf {
    let mut path = store.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// Takes the store's lock without waiting, and writes this process's id into the lock file.
pub(crate) fn lock(store: &Path) -> Result<StoreLock, LockError> {
    let path = lock_path(store);
    let io = |source| LockError::Io { path: path.clone(), source };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            return Err(LockError::Held { store: store.to_path_buf(), holder: text.trim().parse().ok() })
        }
        Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
    };
    let written =
        locked.set_len(0).and_then(|()| locked.rewind()).and_then(|()| writeln!(locked, "{}", std::process::id()));
    written.map_err(io)?;
    Ok(StoreLock { _file: locked })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().expect("dir");
        let store = dir.path().join("state.db");
        let held = lock(&store).expect("first");
        match lock(&store) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected held, got {:?}", other.map(|_| ())),
        }
        drop(held);
        assert!(lock(&store).is_ok(), "released when dropped");
    }
}
