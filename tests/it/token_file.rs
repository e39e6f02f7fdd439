//! `workload::TokenFile` against real files: expiry from a JWT's `exp` or
//! the re-read period, Kubernetes' atomic `..data` rotation, the last good
//! token kept through failed reads, bounded and named errors, and one read
//! for a burst.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::events::Events;
use support::jwt::expiring_in as jwt;
use support::temp_dir::TempDir;
use tower_token_refresh::workload::TokenFile;
use tower_token_refresh::{BoxError, TokenCache, TokenSource};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn a_jwt_expires_at_its_exp_or_at_the_next_reread() {
    let dir = TempDir::new("token-file-jwt");
    let path = dir.join("token");
    write(&path, &format!("{}\n", jwt("svc", HOUR)));
    let token = TokenFile::new(&path).read().await.unwrap();
    assert_eq!(token.secret(), jwt("svc", HOUR), "trimmed");
    assert_eq!(
        token.time_left(),
        Some(MINUTE),
        "read again within a minute"
    );

    let token = TokenFile::new(&path)
        .reread_every(2 * HOUR)
        .read()
        .await
        .unwrap();
    let left = token.time_left().unwrap();
    assert!(
        left <= HOUR && left > HOUR - Duration::from_secs(5),
        "{left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_that_is_not_a_jwt_is_read_again_every_period() {
    let dir = TempDir::new("token-file-opaque");
    let path = dir.join("token");
    write(&path, "hvs.opaque-vault-token\n");
    let file = TokenFile::new(&path).reread_every(Duration::from_secs(30));
    let token = file.read().await.unwrap();
    assert_eq!(token.secret(), "hvs.opaque-vault-token");
    assert_eq!(token.time_left(), Some(Duration::from_secs(30)));
}

/// Kubernetes writes each token into a new directory and swaps the
/// `..data` link to it atomically; the token path goes through that link.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_rotation_never_fails_a_read() {
    use std::os::unix::fs::symlink;

    let temp = TempDir::new("token-file-rotation");
    let dir = temp.path().to_owned();
    let publish = move |generation: usize| {
        let data = dir.join(format!("..2026_12_05_{generation}"));
        std::fs::create_dir(&data).unwrap();
        write(
            &data.join("token"),
            &jwt(&format!("gen-{generation}"), HOUR),
        );
        let staging = dir.join("..data_tmp");
        symlink(data.file_name().unwrap(), &staging).unwrap();
        std::fs::rename(&staging, dir.join("..data")).unwrap();
        if generation > 0 {
            let old = dir.join(format!("..2026_12_05_{}", generation - 1));
            std::fs::remove_dir_all(old).unwrap();
        }
    };
    publish(0);
    symlink("..data/token", temp.join("token")).unwrap();

    let file = TokenFile::new(temp.join("token"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rotations = Arc::new(AtomicUsize::new(0));
    let rotator = {
        let (stop, rotations) = (Arc::clone(&stop), Arc::clone(&rotations));
        std::thread::spawn(move || {
            let mut generation = 0;
            while !stop.load(Ordering::SeqCst) {
                generation += 1;
                publish(generation);
                rotations.store(generation, Ordering::SeqCst);
            }
        })
    };
    // Read while the file rotates: at least 200 reads, and on until it has
    // rotated 50 times (bounded, should a slow machine starve the thread).
    let mut seen = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    let mut reads = 0;
    while reads < 200 || rotations.load(Ordering::SeqCst) < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rotator never ran"
        );
        let token = file.read().await.expect("no read fails across rotations");
        seen.insert(token.secret().to_owned());
        reads += 1;
    }
    stop.store(true, Ordering::SeqCst);
    rotator.join().unwrap();
    assert!(seen.len() > 1, "new tokens were read: {}", seen.len());
}

#[tokio::test(start_paused = true)]
async fn a_failed_read_keeps_the_last_good_token_until_it_expires() {
    let (events, _guard) = Events::capture();
    let dir = TempDir::new("token-file-kept");
    let path = dir.join("token");
    let good = jwt("svc", Duration::from_secs(120));
    write(&path, &good);
    let file = TokenFile::new(&path);
    file.read().await.unwrap();

    std::fs::remove_file(&path).unwrap();
    let kept = file.read().await.unwrap();
    assert_eq!(kept.secret(), good);
    assert_eq!(kept.time_left(), Some(MINUTE));
    let warned = events.lines_with("token file unreadable; using the token read before");
    assert_eq!(warned.len(), 1, "{}", events.text());
    assert!(!events.text().contains(&good), "never logged");

    // Once it has expired, the failure shows.
    tokio::time::advance(Duration::from_secs(121)).await;
    let error = file.read().await.unwrap_err();
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("could not read {}: ", path.display())),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_jwt_cut_short_mid_write_keeps_the_last_good_token() {
    let dir = TempDir::new("token-file-cut");
    let path = dir.join("token");
    let good = jwt("svc", HOUR);
    write(&path, &good);
    let file = TokenFile::new(&path);
    file.read().await.unwrap();
    // Written in place, and read half-way through.
    write(&path, &good[..good.len() / 2]);
    assert_eq!(file.read().await.unwrap().secret(), good);

    // Without a token read before, the error names the file, not the text.
    let error = TokenFile::new(&path).read().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("token file {} holds a malformed JWT", path.display())
    );
}

#[cfg(unix)]
#[tokio::test]
async fn bad_files_are_refused_with_the_path_never_the_content() {
    let dir = TempDir::new("token-file-bad");
    let read = |name: &str| TokenFile::new(dir.join(name));

    let huge = dir.join("huge");
    write(&huge, &"secret-".repeat(20_000));
    let error = read("huge").read().await.unwrap_err().to_string();
    assert_eq!(
        error,
        format!("token file {} is larger than 65536 bytes", huge.display())
    );

    write(&dir.join("empty"), " \n");
    let error = read("empty").read().await.unwrap_err();
    assert!(error.to_string().ends_with("is empty"), "{error}");

    let fifo = dir.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let error = tokio::time::timeout(Duration::from_secs(10), read("fifo").read())
        .await
        .expect("a FIFO must not block")
        .unwrap_err();
    assert!(
        error.to_string().ends_with("is not a regular file"),
        "{error}"
    );

    let error = read("missing").read().await.unwrap_err();
    assert_eq!(error.path(), dir.join("missing"));
    assert!(error.to_string().starts_with("could not read "), "{error}");
    assert!(std::error::Error::source(&error).is_some(), "the io::Error");
}

#[test]
fn debug_shows_the_path_only() {
    let file = TokenFile::new("/var/run/secrets/tokens/api");
    let shown = format!("{file:?}");
    assert!(shown.contains("/var/run/secrets/tokens/api"), "{shown}");
    assert_eq!(
        file.fingerprint().as_deref(),
        Some("token file /var/run/secrets/tokens/api")
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_at_expiry_reads_the_file_once() {
    let dir = TempDir::new("token-file-burst");
    let path = dir.join("token");
    write(&path, &jwt("svc", HOUR));
    let file = TokenFile::new(&path);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let cache = TokenCache::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let file = file.clone();
        async move { file.read().await.map_err(BoxError::from) }
    });
    let burst = || {
        let callers: Vec<_> = (0..1000)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token().await.map(|token| token.secret().len()) })
            })
            .collect();
        async move {
            for caller in callers {
                caller.await.unwrap().unwrap();
            }
        }
    };
    burst().await;
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    // Past the re-read: one more read for the next thousand.
    tokio::time::advance(MINUTE + Duration::from_secs(1)).await;
    burst().await;
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}
