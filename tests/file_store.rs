//! `FileStore` against real files: restarts reuse the token, the file is
//! private and replaced atomically, bad files are reported and ignored, and
//! a refresh token grant keeps its rotated refresh token there. Processes
//! sharing a file are tested in `fleet.rs`.

mod support;

use std::path::Path;
use std::time::Duration;

use support::events::Events;
use support::temp_dir::TempDir;
use support::{TestSource, token_endpoint};
use tower_token_refresh::TokenCache;
use tower_token_refresh::store::FileStore;

const HOUR: Duration = Duration::from_secs(3600);

fn cache(source: &TestSource, path: &Path) -> TokenCache {
    TokenCache::builder(source.clone())
        .store(FileStore::new(path))
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
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"token.json".to_owned()) && names.contains(&"token.json.lock".to_owned())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_corrupted_file_is_reported_ignored_and_replaced() {
    let dir = TempDir::new("corrupted");
    let path = dir.join("token.json");
    std::fs::write(
        &path,
        b"{\"format\":1,\"access_token\":\"secret-in-a-broken-fi",
    )
    .unwrap();
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

#[tokio::test(flavor = "current_thread")]
async fn an_unusable_path_is_reported_and_requests_still_get_tokens() {
    let dir = TempDir::new("unusable");
    // A directory where the file should be: it can be neither read nor
    // replaced.
    let path = dir.join("token.json");
    std::fs::create_dir_all(&path).unwrap();
    let source = TestSource::issuing(HOUR);
    let (events, _guard) = Events::capture();

    let cache = cache(&source, &path);
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert!(
        !events
            .lines_with("token file unreadable; ignoring it")
            .is_empty()
    );
    assert!(
        !events
            .lines_with("could not save the token to the store")
            .is_empty(),
        "{}",
        events.text()
    );
    assert_eq!(cache.stats().store_failures, 1);
}

#[cfg(unix)]
#[tokio::test(flavor = "current_thread")]
async fn a_file_others_can_read_is_reported() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("shared");
    let path = dir.join("token.json");
    let source = TestSource::issuing(HOUR);
    cache(&source, &path).token().await.unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (events, _guard) = Events::capture();
    cache(&source, &path).token().await.unwrap();
    assert!(
        !events.lines_with("readable by other users").is_empty(),
        "{}",
        events.text()
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_is_saved_and_the_next_run_starts_from_it() {
    let dir = TempDir::new("refresh-token");
    let path = dir.join("token.json");
    let endpoint = token_endpoint::TokenEndpoint::rotating_refresh_tokens("pw").await;
    // Both runs are configured with the refresh token from sign-in, which
    // the first exchange rotates away.
    let run = || {
        let store = std::sync::Arc::new(FileStore::new(&path));
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
