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

use std::fs::File;
use std::io;
use std::path::Path;

/// The largest token record read; a larger file is not one of ours.
pub(super) const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Opens the token file for reading, without following a symbolic link
/// and without blocking on a FIFO; `None` if there is no file. The file is
/// not checked yet: see [`check_record`].
pub(super) fn open_record(path: &Path) -> io::Result<Option<File>> {
    #[cfg(unix)]
    let opened = {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(io::Error::from)
    };
    #[cfg(not(unix))]
    let opened = File::open(path);
    match opened {
        Ok(file) => Ok(Some(file)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) if is_symlink_error(&error) => Err(io::Error::other(
            "it is a symbolic link (not followed: the token file must be a file of its own)",
        )),
        Err(error) => Err(error),
    }
}

/// Why the open token file cannot be trusted, if it cannot: it must be a
/// regular file of this user's, readable and writable by nobody else.
pub(super) fn check_record(file: &File) -> Result<(), &'static str> {
    #[cfg(unix)]
    {
        let metadata = file.metadata().map_err(|_| "its metadata cannot be read")?;
        check_record_metadata(&metadata, effective_uid())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// [`check_record`], for a file with `metadata` and a process running as
/// `uid`.
#[cfg(unix)]
fn check_record_metadata(metadata: &std::fs::Metadata, uid: u32) -> Result<(), &'static str> {
    use std::os::unix::fs::MetadataExt;
    if !metadata.is_file() {
        return Err("it is not a regular file");
    }
    if metadata.uid() != uid {
        return Err("it belongs to another user");
    }
    if metadata.mode() & 0o077 != 0 {
        return Err("other users may read or change it (it should be mode 0600)");
    }
    Ok(())
}

/// Opens (creating it, mode `0600`) the lock file, without following a
/// symbolic link; it must be a regular file of this user's.
pub(super) fn open_lock(path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;

        use rustix::fs::{Mode, OFlags};
        let file = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map(File::from)
        .map_err(|error| {
            let error = io::Error::from(error);
            if is_symlink_error(&error) {
                io::Error::other("the lock file is a symbolic link (not followed)")
            } else {
                error
            }
        })?;
        let metadata = file.metadata()?;
        if !metadata.is_file() || metadata.uid() != effective_uid() {
            return Err(io::Error::other(
                "the lock file is not a regular file of this user's",
            ));
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        options.open(path)
    }
}

/// Why the token file's directory cannot be trusted, if it cannot: it must
/// be a directory of this user's that nobody else may write to (or they
/// could replace the files in it).
pub(super) fn check_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(dir)?;
        let problem = if !metadata.is_dir() {
            Some("it is not a directory")
        } else if metadata.uid() != effective_uid() {
            Some("it belongs to another user")
        } else if metadata.mode() & 0o022 != 0 {
            Some("other users may write to it")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the token file's directory cannot be trusted: {problem}"),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(unix)]
fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether `error` is what opening a symbolic link with `O_NOFOLLOW` gives.
fn is_symlink_error(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
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
        let me = effective_uid();
        assert_eq!(check_record_metadata(&metadata, me), Ok(()));
        assert_eq!(
            check_record_metadata(&metadata, me.wrapping_add(1)),
            Err("it belongs to another user")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        assert!(check_record_metadata(&metadata, me).is_err());
        let directory = std::fs::metadata(&dir).unwrap();
        assert_eq!(
            check_record_metadata(&directory, me),
            Err("it is not a regular file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
