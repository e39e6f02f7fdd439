//! [`TokenFile`]: a token a platform keeps in a file, read again as it
//! rotates.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::{BoxError, Token, TokenFuture, TokenSource};

/// How often a [`TokenFile`] is read again by default, whatever its token's
/// expiry: once a minute.
pub const DEFAULT_REREAD: Duration = Duration::from_secs(60);

/// The largest token file read; a larger one is refused (a token is a few
/// kilobytes at most).
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// A token kept in a file that a platform rotates: a Kubernetes projected
/// service-account token (`/var/run/secrets/tokens/…`), a Vault Agent sink,
/// Azure's `AZURE_FEDERATED_TOKEN_FILE`, any file a sidecar rewrites.
///
/// - **When it is read again.** A JWT's `exp` says when it expires, and the
///   file is read again before then, and at least every
///   [`reread_every`](Self::reread_every) period (a minute by default):
///   the kubelet writes the next token at 80 % of the current one's
///   lifetime, long before it expires. A token that is not a JWT is read
///   again every period.
/// - **Rotation.** Kubernetes swaps the file in place atomically (its
///   `..data` symbolic link): a read sees the old token or the new one.
///   When a read fails, or finds a JWT cut short (a sidecar that writes in
///   place, caught mid-write), the last good token is used again as long
///   as it has not expired, with a `tracing` warning; only then does the
///   failure reach the cache.
/// - **Bounded.** Only a regular file is read (not a FIFO, which would
///   block), and at most [`MAX_TOKEN_FILE_BYTES`]; surrounding white space
///   is trimmed.
/// - **Errors** ([`TokenFileError`]) name the path and what failed, never
///   the content; `Debug` shows only the path.
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::workload::TokenFile;
/// use tower_token_refresh::{TokenCache, TokenRefreshLayer};
///
/// // A projected service-account token, with its audience set for the API.
/// let cache = TokenCache::new(TokenFile::new("/var/run/secrets/tokens/api-token"));
/// let layer = TokenRefreshLayer::new(cache);
/// ```
#[derive(Clone)]
pub struct TokenFile {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    reread: Duration,
    /// The last token read whole, with its own expiry (a JWT's `exp`).
    last_good: Mutex<Option<LastGood>>,
}

#[derive(Clone)]
struct LastGood {
    token: Token,
    expires: Option<Instant>,
}

impl TokenFile {
    /// The token in the file at `path`, read again at least every
    /// [`DEFAULT_REREAD`]. Nothing is read before the cache asks.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                reread: DEFAULT_REREAD,
                last_good: Mutex::new(None),
            }),
        }
    }

    /// Reads the file again at least every `period` (at least a second),
    /// even when its token lives longer.
    pub fn reread_every(self, period: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: self.inner.path.clone(),
                reread: period.max(Duration::from_secs(1)),
                last_good: Mutex::new(None),
            }),
        }
    }

    /// The file the token is read from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Reads the token now.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or holds no usable token, and no token
    /// read earlier is still good (see the type's docs).
    pub async fn read(&self) -> Result<Token, TokenFileError> {
        let inner = Arc::clone(&self.inner);
        let path = inner.path.clone();
        let read = tokio::task::spawn_blocking(move || read_token(&path))
            .await
            .unwrap_or_else(|_| {
                Err(TokenFileError::new(
                    &inner.path,
                    What::Read(io::Error::other("the reading task did not finish")),
                ))
            });
        let now = Instant::now();
        let mut last_good = inner
            .last_good
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match read {
            Ok(token) => {
                let good = LastGood {
                    expires: token.expiry(),
                    token,
                };
                *last_good = Some(good.clone());
                Ok(inner.to_use(good, now))
            }
            Err(error) => match last_good.clone() {
                Some(good) if good.expires.is_none_or(|expires| expires > now) => {
                    tracing::warn!(
                        path = %inner.path.display(),
                        error = &error as &dyn std::error::Error,
                        "token file unreadable; using the token read before"
                    );
                    Ok(inner.to_use(good, now))
                }
                _ => Err(error),
            },
        }
    }
}

impl Inner {
    /// `good`, to hand to the cache: expiring at its own expiry or at the
    /// next re-read, whichever comes first, so that the cache reads the
    /// file again by then.
    fn to_use(&self, good: LastGood, now: Instant) -> Token {
        let reread_at = now + self.reread;
        let expires = good.expires.map_or(reread_at, |at| at.min(reread_at));
        let token = Token::bearer(good.token.secret().to_owned());
        token.expires_in(expires.saturating_duration_since(now))
    }
}

/// Reads the token in the file at `path` (blocking).
fn read_token(path: &Path) -> Result<Token, TokenFileError> {
    let error = |what| TokenFileError::new(path, what);
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading would block until a writer comes: open
    // without blocking, then refuse anything but a regular file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path).map_err(|e| error(What::Read(e)))?;
    let metadata = file.metadata().map_err(|e| error(What::Read(e)))?;
    if !metadata.is_file() {
        return Err(error(What::NotAFile));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(What::Read(e)))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(error(What::TooLarge));
    }
    let text = String::from_utf8(bytes).map_err(|_| error(What::NotText))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(error(What::Empty));
    }
    // A JWT (its header, `{"…`, encodes as `eyJ…`): its `exp` says when it
    // expires; one that does not parse was caught mid-write (cut short) or
    // is damaged.
    if text.starts_with("eyJ") || text.split('.').count() == 3 {
        return Token::from_jwt(text).map_err(|_| error(What::MalformedJwt));
    }
    Ok(Token::bearer(text))
}

impl TokenSource for TokenFile {
    fn fetch(&self) -> TokenFuture {
        let file = self.clone();
        Box::pin(async move { file.read().await.map_err(BoxError::from) })
    }

    fn name(&self) -> &str {
        "token file"
    }

    fn fingerprint(&self) -> Option<String> {
        Some(format!("token file {}", self.inner.path.display()))
    }
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.inner.path)
            .field("reread", &self.inner.reread)
            .finish_non_exhaustive()
    }
}

/// Why a [`TokenFile`] could not give a token: its path and what failed,
/// never the file's content.
#[derive(Debug)]
pub struct TokenFileError {
    path: PathBuf,
    what: What,
}

#[derive(Debug)]
enum What {
    Read(io::Error),
    NotAFile,
    TooLarge,
    NotText,
    Empty,
    MalformedJwt,
}

impl TokenFileError {
    fn new(path: &Path, what: What) -> Self {
        Self {
            path: path.to_owned(),
            what,
        }
    }

    /// The file that could not be read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for TokenFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.what {
            What::Read(error) => write!(f, "could not read {path}: {error}"),
            What::NotAFile => write!(f, "token file {path} is not a regular file"),
            What::TooLarge => write!(
                f,
                "token file {path} is larger than {MAX_TOKEN_FILE_BYTES} bytes"
            ),
            What::NotText => write!(f, "token file {path} is not UTF-8 text"),
            What::Empty => write!(f, "token file {path} is empty"),
            What::MalformedJwt => write!(f, "token file {path} holds a malformed JWT"),
        }
    }
}

impl std::error::Error for TokenFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.what {
            What::Read(error) => Some(error),
            _ => None,
        }
    }
}
