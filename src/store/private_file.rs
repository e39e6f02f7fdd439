//! Opening [`FileStore`](super::FileStore)'s files so that another user of
//! the machine cannot substitute them: no symbolic link is followed, and a
//! file or directory is used only if this process's user owns it and
//! nobody else can change it (nor read the token file).
//!
//! Without these checks, another user able to write to the directory could
//! plant a token of theirs (sent to the API as ours, and a refresh token
//! that signs us in as them), point the lock file at a file of their choice
//! for us to create, or leave a FIFO that blocks a blocking thread forever.
//! On other platforms than Unix, the files are opened as usual.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

/// The largest token record read; a larger file is not one of ours.
pub(super) const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// What a file or directory must be to be trusted.
#[derive(Clone, Copy)]
enum Kind {
    /// The token file: a regular file only its owner may read or write.
    Record,
    /// The lock file: a regular file (it holds nothing).
    Lock,
    /// Their directory: nobody but its owner may write to it.
    Dir,
}

/// Opens the token file for reading, without following a symbolic link
/// and without blocking on a FIFO; `None` if there is no file. The file is
/// not checked yet: see [`check_record`].
pub(super) fn open_record(path: &Path) -> io::Result<Option<File>> {
    match open_unfollowed(path, false, "the token file") {
        Ok(file) => Ok(Some(file)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Why the open token file cannot be trusted, if it cannot: it must be a
/// regular file of this user's, readable and writable by nobody else.
pub(super) fn check_record(file: &File) -> Result<(), &'static str> {
    let metadata = file.metadata().map_err(|_| "its metadata cannot be read")?;
    check(&metadata, Kind::Record)
}

/// Opens (creating it, mode `0600`) the lock file, without following a
/// symbolic link; it must be a regular file of this user's.
pub(super) fn open_lock(path: &Path) -> io::Result<File> {
    let file = open_unfollowed(path, true, "the lock file")?;
    check(&file.metadata()?, Kind::Lock)
        .map_err(|why| io::Error::other(format!("the lock file cannot be trusted: {why}")))?;
    Ok(file)
}

/// Why the token file's directory cannot be trusted, if it cannot: it must
/// be a directory of this user's that nobody else may write to (or they
/// could replace the files in it).
pub(super) fn check_dir(dir: &Path) -> Result<(), &'static str> {
    let metadata = std::fs::metadata(dir).map_err(|_| "its metadata cannot be read")?;
    check(&metadata, Kind::Dir)
}

/// Opens `path` read-only, or read-write creating it `0600`; on Unix
/// without following a symbolic link (an error naming `what`) and without
/// blocking on a FIFO.
fn open_unfollowed(path: &Path, create: bool, what: &str) -> io::Result<File> {
    #[cfg(unix)]
    {
        use rustix::fs::{Mode, OFlags};
        let mut flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        flags |= if create {
            OFlags::RDWR | OFlags::CREATE
        } else {
            OFlags::RDONLY
        };
        rustix::fs::open(path, flags, Mode::RUSR | Mode::WUSR)
            .map(File::from)
            .map_err(|error| {
                if error == rustix::io::Errno::LOOP {
                    io::Error::other(format!(
                        "{what} is a symbolic link (not followed: it must be a file of its own)"
                    ))
                } else {
                    io::Error::from(error)
                }
            })
    }
    #[cfg(not(unix))]
    {
        let _ = what;
        std::fs::OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .truncate(false)
            .open(path)
    }
}

/// Why `metadata` does not describe a trustworthy `kind` of this user's.
fn check(metadata: &Metadata, kind: Kind) -> Result<(), &'static str> {
    #[cfg(unix)]
    {
        check_for(metadata, kind, rustix::process::geteuid().as_raw())
    }
    #[cfg(not(unix))]
    {
        let _ = (metadata, kind);
        Ok(())
    }
}

/// [`check`], for a process running as `uid`.
#[cfg(unix)]
fn check_for(metadata: &Metadata, kind: Kind, uid: u32) -> Result<(), &'static str> {
    use std::os::unix::fs::MetadataExt;
    let (is_kind, not_kind, others_may) = match kind {
        Kind::Record => (
            metadata.is_file(),
            "it is not a regular file",
            (
                0o077,
                "other users may read or change it (it should be mode 0600)",
            ),
        ),
        Kind::Lock => (metadata.is_file(), "it is not a regular file", (0, "")),
        Kind::Dir => (
            metadata.is_dir(),
            "it is not a directory",
            (0o022, "other users may write to it"),
        ),
    };
    if !is_kind {
        return Err(not_kind);
    }
    if metadata.uid() != uid {
        return Err("it belongs to another user");
    }
    let (forbidden, why) = others_may;
    if metadata.mode() & forbidden != 0 {
        return Err(why);
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_record_must_be_a_private_regular_file_of_this_user() {
        let dir = std::env::temp_dir().join(format!("ttr-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token.json");
        std::fs::write(&path, b"{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = open_record(&path).unwrap().unwrap();
        let metadata = file.metadata().unwrap();
        let me = rustix::process::geteuid().as_raw();
        assert_eq!(check_for(&metadata, Kind::Record, me), Ok(()));
        assert_eq!(
            check_for(&metadata, Kind::Record, me.wrapping_add(1)),
            Err("it belongs to another user")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        assert!(check_for(&metadata, Kind::Record, me).is_err());
        let directory = std::fs::metadata(&dir).unwrap();
        assert_eq!(
            check_for(&directory, Kind::Record, me),
            Err("it is not a regular file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
