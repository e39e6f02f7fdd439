//! `FileStore` against real files: restarts reuse the token, the file is
//! private and replaced atomically, bad files are reported and ignored, and
//! a refresh token grant keeps its rotated refresh token there. Processes
//! sharing a file are tested in `fleet.rs`.

use crate::support;

use std::path::Path;
use std::time::Duration;

use support::events::Events;
use support::temp_dir::TempDir;
use support::{TestSource, token_endpoint};
use tower_token_refresh::TokenCache;
use tower_token_refresh::store::FileStore;

const HOUR: Duration = Duration::from_secs(3600);

/// Writes a file only its owner may read, as the store's own files are.
fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn cache(source: &TestSource, path: &Path) -> TokenCache {
    TokenCache::builder(source.clone())
        .store(FileStore::new(path).unwrap())
        .build()
}

#[tokio::test]
async fn a_second_run_reuses_the_token_without_fetching() {
    let dir = TempDir::new("restart");
    let path = dir.join("state/token.json");
    let source = TestSource::issuing(HOUR);

    let first_run = cache(&source, &path);
    assert_eq!(first_run.token().await.unwrap().secret(), "token-1");
    drop(first_run);

    let second_run = cache(&source, &path);
    let token = second_run.token().await.unwrap();
    assert_eq!(token.secret(), "token-1");
    assert_eq!(source.calls(), 1, "the second run did not fetch");
    let left = token.time_left().unwrap();
    assert!(
        left > HOUR - Duration::from_secs(5) && left <= HOUR,
        "{left:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_is_private_and_written_whole() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("private");
    let path = dir.join("nested/token.json");
    let source = TestSource::issuing(HOUR);
    cache(&source, &path).token().await.unwrap();

    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["access_token"], "token-1");
    assert!(json["expires_at_ms"].as_u64().is_some());
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["token.json", "token.json.lock", "token.json.write-lock"],
        "{names:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_corrupted_file_is_reported_ignored_and_replaced() {
    let dir = TempDir::new("corrupted");
    let path = dir.join("token.json");
    write_private(
        &path,
        b"{\"format\":1,\"access_token\":\"secret-in-a-broken-fi",
    );
    let source = TestSource::issuing(HOUR);
    let (events, _guard) = Events::capture();

    let cache = cache(&source, &path);
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    let warnings = events.lines_with("token file corrupted; ignoring it");
    assert!(!warnings.is_empty(), "{}", events.text());
    assert!(
        !events.text().contains("secret-in-a-broken"),
        "never quoted"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["access_token"], "token-1", "replaced by a good one");
}

#[test]
fn a_path_that_cannot_work_is_refused_when_the_store_is_made() {
    use tower_token_refresh::store::StoreErrorKind;

    let dir = TempDir::new("unusable");
    // A directory where the file should be.
    let path = dir.join("token.json");
    std::fs::create_dir_all(&path).unwrap();
    let error = FileStore::new(&path).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::InvalidConfig);
    assert_eq!(error.to_string(), "the token file's path is a directory");

    // No file name at all.
    let error = FileStore::new(dir.path().join("..")).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::InvalidConfig, "{error}");

    // A missing directory is made, private.
    let store = FileStore::new(dir.join("made/for/it/token.json")).unwrap();
    assert!(store.path().parent().unwrap().is_dir());
}

#[cfg(unix)]
#[test]
fn a_directory_others_may_write_to_is_refused_when_the_store_is_made() {
    use std::error::Error as _;
    use std::os::unix::fs::PermissionsExt;
    use tower_token_refresh::store::StoreErrorKind;

    // `/tmp` itself, as the new user did.
    let error = FileStore::new("/tmp/token.json").unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::InvalidConfig);
    assert_eq!(
        error.to_string(),
        "the token file's directory is not private to this user"
    );
    let why = error.source().unwrap().to_string();
    assert!(why.starts_with("/tmp: "), "{why}");

    let dir = TempDir::new("open-for-all");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = FileStore::new(dir.join("token.json")).unwrap_err();
    assert!(
        error
            .source()
            .unwrap()
            .to_string()
            .contains("other users may write to it"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_path_spoiled_after_start_up_is_reported_and_requests_still_get_tokens() {
    let dir = TempDir::new("unusable-later");
    let path = dir.join("token.json");
    let source = TestSource::issuing(HOUR);
    let cache = cache(&source, &path);
    // A directory where the file should be, made after the store was.
    std::fs::create_dir_all(&path).unwrap();
    let (events, _guard) = Events::capture();

    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    // (Unix opens a directory, and finds it is not a regular file.)
    let ignored = events
        .lines_with("token file unreadable; ignoring it")
        .len()
        + events.lines_with("it is not a regular file").len();
    assert!(ignored > 0, "{}", events.text());
    assert!(
        !events
            .lines_with("could not save the token to the store")
            .is_empty(),
        "{}",
        events.text()
    );
    assert_eq!(cache.stats().store_failures, 1);
}

/// What another user of the machine could leave in place of the token file.
#[cfg(unix)]
mod planted {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};

    use super::*;

    /// `nobody`: a user id that is not this process's.
    const OTHER_USER: u32 = 65534;

    const PLANTED: &[u8] =
        br#"{"format":1,"access_token":"planted-token","refresh_token":"planted-refresh"}"#;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Gets a token from a cache over the file at `path` and checks that it
    /// is a fetched one, and that a warning said why the file was ignored.
    async fn ignored(path: &Path, why: &str) {
        let source = TestSource::issuing(HOUR);
        let (events, _guard) = Events::capture();
        let token = cache(&source, path).token().await.unwrap();
        assert_eq!(token.secret(), "token-1", "{}", events.text());
        assert_eq!(source.calls(), 1);
        let warned = events.lines_with("token file cannot be trusted");
        assert!(
            warned.iter().any(|line| line.contains(why)),
            "{}",
            events.text()
        );
        assert!(!events.text().contains("planted"), "{}", events.text());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_file_others_can_read_is_ignored() {
        let dir = TempDir::new("shared");
        let path = dir.join("token.json");
        std::fs::write(&path, PLANTED).unwrap();
        set_mode(&path, 0o644);
        ignored(&path, "other users may read or change it").await;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "replaced by a private file"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_file_of_another_user_is_ignored() {
        let dir = TempDir::new("foreign");
        let path = dir.join("token.json");
        write_private(&path, PLANTED);
        if let Err(error) = chown(&path, Some(OTHER_USER), Some(OTHER_USER)) {
            // Only root can give a file away; the check itself is also
            // covered by `private_file`'s unit test, which needs no root.
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            eprintln!("not run as root: a file of another user cannot be made here");
            return;
        }
        ignored(&path, "belongs to another user").await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_symbolic_link_is_not_followed() {
        let dir = TempDir::new("symlink");
        let elsewhere = TempDir::new("elsewhere");
        let target = elsewhere.join("token.json");
        write_private(&target, PLANTED);
        let path = dir.join("token.json");
        symlink(&target, &path).unwrap();
        let store = FileStore::new(&path).unwrap();
        use tower_token_refresh::store::RefreshTokenStore;
        assert!(store.load_refresh_token().await.unwrap().is_none());
        let source = TestSource::issuing(HOUR);
        assert_eq!(
            cache(&source, &path).token().await.unwrap().secret(),
            "token-1"
        );
        assert_eq!(
            std::fs::read(&target).unwrap(),
            PLANTED,
            "the link's target is left alone"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_fifo_or_a_huge_file_does_not_block_or_fill_memory() {
        let dir = TempDir::new("fifo");
        let path = dir.join("token.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        use tower_token_refresh::store::RefreshTokenStore;
        let store = FileStore::new(&path).unwrap();
        let loaded = tokio::time::timeout(Duration::from_secs(10), store.load_refresh_token())
            .await
            .expect("reading a FIFO must not block");
        assert!(loaded.unwrap().is_none());

        let dir = TempDir::new("huge");
        let path = dir.join("token.json");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 30).unwrap();
        set_mode(&path, 0o600);
        ignored(&path, "larger than any token record").await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_directory_others_may_write_to_is_not_used() {
        use tower_token_refresh::store::TokenStore;

        let base = TempDir::new("open-dir");
        let shared = base.join("shared");
        std::fs::create_dir(&shared).unwrap();
        let store = FileStore::new(shared.join("token.json")).unwrap();
        let source = TestSource::issuing(HOUR);
        let cache = cache(&source, &shared.join("token.json"));
        // Opened to others after the store was made.
        set_mode(&shared, 0o777);
        // Another user's link where the lock file goes: it must not be
        // followed (here it points at a file that would be created).
        let target = base.join("created-through-the-link");
        symlink(&target, shared.join("token.json.lock")).unwrap();
        let error = store.try_lock(HOUR).await.unwrap_err();
        assert!(error.to_string().contains("not private"), "{error}");
        assert!(!target.exists());

        // Nor in a private directory, through a planted link.
        let private = TempDir::new("lock-link");
        symlink(&target, private.join("token.json.lock")).unwrap();
        let error = FileStore::new(private.join("token.json"))
            .unwrap()
            .try_lock(HOUR)
            .await
            .unwrap_err();
        assert!(
            format!("{error} {error:?}").contains("symbolic link"),
            "{error:?}"
        );
        assert!(!target.exists());

        // The cache still gets tokens, without the store.
        let token = cache.token().await.unwrap();
        assert_eq!(token.secret(), "token-1");
        assert!(!shared.join("token.json").exists(), "nothing saved there");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wrong_record_is_reported_without_quoting_it() {
        let dir = TempDir::new("quoted");
        let path = dir.join("token.json");
        std::fs::write(
            &path,
            br#"{"format":1,"expires_at_ms":"secret-in-the-file"}"#,
        )
        .unwrap();
        set_mode(&path, 0o600);
        let (events, _guard) = Events::capture();
        let source = TestSource::issuing(HOUR);
        cache(&source, &path).token().await.unwrap();
        assert!(
            !events.lines_with("corrupted").is_empty(),
            "{}",
            events.text()
        );
        assert!(
            !events.text().contains("secret-in-the-file"),
            "{}",
            events.text()
        );
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_saved_and_the_next_run_starts_from_it() {
    let dir = TempDir::new("refresh-token");
    let path = dir.join("token.json");
    let endpoint = token_endpoint::TokenEndpoint::rotating_refresh_tokens("pw").await;
    // Both runs are configured with the refresh token from sign-in, which
    // the first exchange rotates away.
    let run = || {
        let store = std::sync::Arc::new(FileStore::new(&path).unwrap());
        let grant = endpoint
            .refresh_token_grant("pw")
            .store(store.clone())
            .build()
            .unwrap();
        // The moment the grant hands over an access token, the refresh
        // token to use next must already be in the file.
        let path = path.clone();
        let checked = move || {
            let grant = grant.clone();
            let path = path.clone();
            async move {
                let token = grant.fetch_token().await?;
                let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
                if json["refresh_token"] != grant.refresh_token().expose() {
                    return Err("refresh token not saved before use".into());
                }
                Ok::<_, tower_token_refresh::BoxError>(token)
            }
        };
        TokenCache::builder(checked).store(store).build()
    };

    assert_eq!(run().token().await.unwrap().secret(), "rt-access-1");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["refresh_token"], "refresh-1");
    assert_eq!(json["access_token"], "rt-access-1");

    // The second run finds a valid access token: no exchange at all.
    let second = run();
    assert_eq!(second.token().await.unwrap().secret(), "rt-access-1");
    assert_eq!(endpoint.requests(), 1);

    // When it needs a new one, it spends the stored refresh-1, not the
    // refresh-0 it was configured with (which the server no longer takes).
    let stale = second.token().await.unwrap();
    assert!(second.invalidate(&stale));
    assert_eq!(second.token().await.unwrap().secret(), "rt-access-2");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["refresh_token"], "refresh-2");
    assert!(endpoint.problems().is_empty(), "{:?}", endpoint.problems());
}
