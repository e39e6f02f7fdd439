//! [`FileStore`]: the token in a file, for restarts and for processes on one
//! machine.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::private_file;
use super::record::Record;
use super::{
    Lease, RefreshTokenStore, StoreError, StoreErrorKind, StoreFuture, StoredToken, TokenStore,
};
use crate::{Secret, Token};

/// The first pause between two attempts at the write lock while another
/// writer has it; it doubles up to [`LOCK_POLL_MAX`]. (A writer holds it for
/// one read and one write of a small file.)
const LOCK_POLL_FIRST: Duration = Duration::from_millis(1);
const LOCK_POLL_MAX: Duration = Duration::from_millis(20);

/// Keeps the token in a file, so that the next run of a program reuses a
/// still-valid token instead of calling the identity provider, and
/// processes on one machine share one token.
///
/// - The file is created with mode `0600` (owner only) in a directory
///   created with `0700` if missing, and written atomically: a temporary
///   file in the same directory, flushed to disk, then renamed over it. A
///   reader sees the old token or the new one, never half of one.
/// - The refresh lock is an exclusive lock on a sibling file (`<file>.lock`,
///   taken with [`File::try_lock`]): the operating system releases it when
///   its holder exits or dies, so the lease is only an upper bound on how
///   long others wait for it.
/// - A corrupted or unreadable file is reported with a `tracing` warning and
///   treated as empty; the next save replaces it.
/// - On Unix, nothing another user of the machine controls is used: the
///   token file is read only if it is a regular file of this user's that
///   nobody else may read or change (not a symbolic link, a FIFO, or a file
///   larger than 64 KiB), and the lock file is never opened through a
///   symbolic link. The directory must belong to this user, and nobody
///   else may write to it (so not `/tmp` itself: use a directory of your
///   own, which is created `0700` if missing). [`FileStore::new`] checks
///   this and refuses such a path; should it change later, saving and
///   locking fail, and the cache fetches without the store.
/// - Every change of the file (a new token, a rejected token
///   [discarded](TokenStore::discard) if the file still holds it, a rotated
///   refresh token) reads, changes and replaces it under a short-lived
///   exclusive lock on a second sibling file (`<file>.write-lock`), so no
///   writer loses another's change.
/// - With a [`RefreshTokenGrant`](crate::oauth2::RefreshTokenGrant) sharing
///   the store, its rotated refresh token is saved in the same file.
///
/// The file holds the token in clear: anyone who can read it can use the
/// token. Keep it in a directory only the program's user can read.
///
/// Give each cache a file of its own (see
/// [one store location per cache](super#one-store-location-per-cache)),
/// and turn on [`retry_rejected`](crate::TokenRefreshLayer::retry_rejected)
/// in a program that makes one request per run: a stored token the server
/// has revoked meanwhile is only found out by a rejection (see
/// [a store and retries go together](super#a-store-and-retries-go-together)).
///
/// # Example
///
/// ```
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::store::FileStore;
/// # use tower_token_refresh::{BoxError, Token};
/// # let source = || async { Ok::<_, BoxError>(Token::bearer("abc")) };
/// # let dir = std::env::temp_dir().join(format!("ttr-doc-file-{}", std::process::id()));
/// # let path = dir.join("orders-api.json");
/// // e.g. /var/lib/my-job/orders-api.json
/// let cache = TokenCache::builder(source)
///     .name("orders-api")
///     .store(FileStore::new(&path)?)
///     .build();
///
/// // A file in a directory others may write to is refused at once.
/// # #[cfg(unix)]
/// assert!(FileStore::new("/tmp/token.json").is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    paths: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    file: PathBuf,
    /// The refresh lock: held for a whole refresh.
    lock: PathBuf,
    /// Held only while the record is read, changed and written back, by
    /// every writer (a refresh's save, a rejection's discard, a rotated
    /// refresh token), so that none loses another's change.
    write_lock: PathBuf,
}

impl FileStore {
    /// A store in the file at `path` (created when the first token is
    /// saved). The lock file is `path` with `.lock` appended. Its directory
    /// is created (`0700`) if missing.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::InvalidConfig`] when `path` cannot be used: it
    /// names no file or a directory, or its directory cannot be created,
    /// belongs to another user or others may write to it (`/tmp` itself).
    /// (It touches the file system: call it at start-up, as you would open
    /// a file.)
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let file = path.into();
        let sibling = |suffix: &str| {
            let mut name = file.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let paths = Paths {
            lock: sibling(".lock"),
            write_lock: sibling(".write-lock"),
            file,
        };
        paths.check()?;
        Ok(Self {
            paths: Arc::new(paths),
        })
    }

    /// The file the token is kept in.
    pub fn path(&self) -> &Path {
        &self.paths.file
    }

    /// Runs blocking file work off the runtime's worker threads; what it
    /// found wrong is logged back here, in the caller's span.
    ///
    /// A caller that stops waiting (the cache's timeout) abandons the work:
    /// a write not yet renamed into place is then dropped, so that a late
    /// write never replaces what a later holder of the lock saved.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Paths, &mut Job) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let paths = Arc::clone(&self.paths);
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut job = Job {
            problems: Vec::new(),
            abandoned: Arc::clone(&abandoned),
        };
        Box::pin(async move {
            let _abandon_if_dropped = AbandonOnDrop(abandoned);
            let (result, problems) = tokio::task::spawn_blocking(move || {
                let result = work(&paths, &mut job);
                (result, job.problems)
            })
            .await
            .map_err(|_| {
                StoreError::new(StoreErrorKind::Io, "file store task did not finish", None)
            })?;
            for problem in problems {
                problem.report();
            }
            result
        })
    }
}

impl FileStore {
    /// Changes the record with `change` if `lease` holds this store's lock;
    /// returns whether it did.
    fn update_holding(
        &self,
        lease: &Lease,
        change: impl FnOnce(&mut Record) + Send + 'static,
    ) -> StoreFuture<'static, bool> {
        // The file lock cannot be lost while the lease holds the file; a
        // lease of another store's file does not count.
        if lease
            .guard::<LockFile>()
            .is_none_or(|held| held.path != self.paths.lock)
        {
            return Box::pin(async { Ok(false) });
        }
        self.blocking(move |paths, job| {
            paths.update(job, change)?;
            Ok(true)
        })
    }
}

impl Paths {
    /// Whether the store can work at all: a file name (not a directory), in
    /// a private directory of this user's.
    fn check(&self) -> Result<(), StoreError> {
        // What is wrong, and where (a path is no secret).
        let invalid = |what: &'static str, path: &Path, why: &dyn std::fmt::Display| {
            StoreError::new(
                StoreErrorKind::InvalidConfig,
                what,
                Some(format!("{}: {why}", path.display()).into()),
            )
        };
        if self.file.file_name().is_none() {
            return Err(invalid(
                "the token file's path names no file",
                &self.file,
                &"no file name",
            ));
        }
        let dir = self.dir();
        create_private_dir(&dir).map_err(|error| {
            invalid("could not create the token file's directory", &dir, &error)
        })?;
        private_file::check_dir(&dir).map_err(|why| {
            invalid(
                "the token file's directory is not private to this user",
                &dir,
                &why,
            )
        })?;
        if self.file.is_dir() {
            return Err(invalid(
                "the token file's path is a directory",
                &self.file,
                &"not a file",
            ));
        }
        // A file others could read or change there is ignored and replaced
        // when the first token is saved (with a warning), as at any time.
        Ok(())
    }

    /// The record in the file; an empty one when there is no file yet or it
    /// cannot be used (a problem to report): not a regular file of this
    /// user's that only this user can read, in a directory nobody else can
    /// write to (see [`private_file`]), or not a record.
    fn read(&self, job: &mut Job) -> Record {
        let problems = &mut job.problems;
        let file = match private_file::open_record(&self.file) {
            Ok(Some(file)) => file,
            Ok(None) => return Record::default(),
            Err(error) => {
                problems.push(Problem::Unreadable(self.file.clone(), error));
                return Record::default();
            }
        };
        let trusted = private_file::check_record(&file).and_then(|()| {
            private_file::check_dir(&self.dir())
                .map_err(|_| "other users may write to its directory, or own it")
        });
        if let Err(why) = trusted {
            problems.push(Problem::NotPrivate(self.file.clone(), why));
            return Record::default();
        }
        let mut bytes = Vec::new();
        if let Err(error) = file
            .take(private_file::MAX_RECORD_BYTES + 1)
            .read_to_end(&mut bytes)
        {
            problems.push(Problem::Unreadable(self.file.clone(), error));
            return Record::default();
        }
        if bytes.len() as u64 > private_file::MAX_RECORD_BYTES {
            problems.push(Problem::NotPrivate(
                self.file.clone(),
                "it is larger than any token record (64 KiB)",
            ));
            return Record::default();
        }
        Record::parse(&bytes).unwrap_or_else(|error| {
            problems.push(Problem::Corrupted(self.file.clone(), error));
            Record::default()
        })
    }

    /// Replaces the file with `record`, atomically.
    fn write(&self, record: &Record, job: &Job) -> Result<(), StoreError> {
        let dir = self.create_dir()?;
        let name = self
            .file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            crate::jitter::random_u64()
        ));
        let written = (|| {
            let mut file = private_options().create_new(true).open(&temporary)?;
            file.write_all(&record.to_json())?;
            file.sync_all()?;
            if job.abandoned.load(Ordering::Acquire) {
                return Err(io::Error::other("abandoned by its caller"));
            }
            fs::rename(&temporary, &self.file)?;
            // Make the rename itself durable (best effort: not every
            // platform can open a directory).
            if let Ok(dir) = File::open(&dir) {
                let _ = dir.sync_all();
            }
            Ok(())
        })();
        written.map_err(|error: io::Error| {
            let _ = fs::remove_file(&temporary);
            StoreError::io("could not write the token file", error)
        })
    }

    /// The directory of the token and lock files.
    fn dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The directory of the token and lock files, created (`0700`) if
    /// missing; an error if another user owns it or may write to it.
    fn create_dir(&self) -> Result<PathBuf, StoreError> {
        let dir = self.dir();
        create_private_dir(&dir).map_err(|error| {
            StoreError::io("could not create the token file's directory", error)
        })?;
        private_file::check_dir(&dir).map_err(|why| {
            StoreError::io(
                "the token file's directory is not private",
                io::Error::new(io::ErrorKind::PermissionDenied, why),
            )
        })?;
        Ok(dir)
    }

    fn try_lock(&self) -> Result<Option<Lease>, StoreError> {
        self.create_dir()?;
        let file = private_file::open_lock(&self.lock)
            .map_err(|error| StoreError::io("could not open the token lock file", error))?;
        match file.try_lock() {
            Ok(()) => {
                let held = LockFile {
                    path: self.lock.clone(),
                    _file: file,
                };
                Ok(Some(
                    Lease::new(format!("pid {}", std::process::id())).holding(held),
                ))
            }
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => {
                Err(StoreError::io("could not lock the token lock file", error))
            }
        }
    }

    /// Reads the record, changes it with `change` and writes it back,
    /// holding the write lock (waiting for it while another writer has it,
    /// until the caller gives up on the job). Returns what `change` said.
    fn update<T>(
        &self,
        job: &mut Job,
        change: impl FnOnce(&mut Record) -> T,
    ) -> Result<T, StoreError> {
        self.create_dir()?;
        let file = private_file::open_lock(&self.write_lock)
            .map_err(|error| StoreError::io("could not open the token write lock file", error))?;
        let mut pause = LOCK_POLL_FIRST;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(error)) => {
                    return Err(StoreError::io(
                        "could not lock the token write lock file",
                        error,
                    ));
                }
            }
            if job.abandoned.load(Ordering::Acquire) {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "the token write lock file stayed locked",
                    None,
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
        let mut record = self.read(job);
        let said = change(&mut record);
        self.write(&record, job)?;
        // Closing the file releases the lock.
        drop(file);
        Ok(said)
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> StoreFuture<'_, Option<StoredToken>> {
        self.blocking(|paths, job| Ok(paths.read(job).token()))
    }

    fn try_lock(&self, _lease: Duration) -> StoreFuture<'_, Option<Lease>> {
        // The operating system frees the lock when its holder dies: no lease
        // to set.
        self.blocking(|paths, _| paths.try_lock())
    }

    fn save<'a>(&'a self, token: &'a StoredToken, lease: &'a Lease) -> StoreFuture<'a, bool> {
        let token = token.clone();
        self.update_holding(lease, move |record| record.set_token(&token))
    }

    fn discard<'a>(&'a self, token: &'a Token) -> StoreFuture<'a, bool> {
        let token = token.clone();
        self.blocking(move |paths, job| {
            // Under the write lock: a token saved meanwhile is either read
            // here (and stays) or written after (over the discard).
            paths.update(job, |record| record.discard(&token))
        })
    }

    fn save_failure<'a>(&'a self, retry_after: Duration, lease: &'a Lease) -> StoreFuture<'a, ()> {
        let saved = self.update_holding(lease, move |record| record.set_failure(retry_after));
        Box::pin(async move { saved.await.map(drop) })
    }

    fn load_failure(&self) -> StoreFuture<'_, Option<Duration>> {
        self.blocking(|paths, job| Ok(paths.read(job).failure()))
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        // Closing the file releases the lock.
        drop(lease);
        Box::pin(async { Ok(()) })
    }

    fn name(&self) -> &str {
        "file"
    }
}

impl RefreshTokenStore for FileStore {
    fn load_refresh_token(&self) -> StoreFuture<'_, Option<Secret>> {
        self.blocking(|paths, job| Ok(paths.read(job).refresh_token()))
    }

    fn save_refresh_token<'a>(&'a self, refresh_token: &'a Secret) -> StoreFuture<'a, ()> {
        let refresh_token = refresh_token.clone();
        self.blocking(move |paths, job| {
            paths.update(job, |record| record.set_refresh_token(&refresh_token))
        })
    }
}

/// The open, locked lock file of a [`Lease`]: closing it releases the lock.
struct LockFile {
    path: PathBuf,
    _file: File,
}

/// Options for files only the owner may read and write.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// What a piece of blocking file work carries: what it found wrong, and
/// whether its caller gave up on it.
struct Job {
    problems: Vec<Problem>,
    abandoned: Arc<AtomicBool>,
}

/// Marks the work abandoned when the caller's future is dropped (after it
/// completed, the mark changes nothing).
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Something wrong with the token file, found on a blocking thread.
enum Problem {
    Unreadable(PathBuf, io::Error),
    Corrupted(PathBuf, StoreError),
    NotPrivate(PathBuf, &'static str),
}

impl Problem {
    fn report(&self) {
        match self {
            Problem::Unreadable(path, error) => tracing::warn!(
                path = %path.display(),
                error = error as &dyn std::error::Error,
                "token file unreadable; ignoring it"
            ),
            Problem::Corrupted(path, error) => tracing::warn!(
                path = %path.display(),
                error = error as &dyn std::error::Error,
                "token file corrupted; ignoring it"
            ),
            Problem::NotPrivate(path, why) => tracing::warn!(
                path = %path.display(),
                why,
                "token file cannot be trusted; ignoring it"
            ),
        }
    }
}
