//! A Kubernetes workload with no secret: its projected service-account
//! token, which the kubelet rotates, is exchanged (OAuth 2.0 token exchange,
//! RFC 8693) for the API's token.
//!
//! Everything runs in this process on 127.0.0.1: a "kubelet" that writes a
//! new service-account token every 2 seconds the way Kubernetes does (a
//! timestamped directory, then an atomic swap of the `..data` symbolic
//! link), a security token service that exchanges only the service-account
//! tokens the cluster issued and that have not expired, and an API that
//! accepts only the tokens the exchange issued, until they expire. Workers
//! call the API for 7 seconds through `TokenRefreshLayer`.
//!
//! Run it with `cargo run --example kubernetes_workload --features workload`.
//! It prints each rotation and exchange, then a summary, and exits non-zero
//! if any request failed or the rotations were not picked up.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::Clock;
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::oauth2::{TokenExchange, token_type};
use tower_token_refresh::workload::TokenFile;
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

/// The kubelet writes a new service-account token this often…
const ROTATE_EVERY: Duration = Duration::from_secs(2);
/// …each valid this long (JWT `exp` has a resolution of one second).
const SERVICE_ACCOUNT_LIFETIME: Duration = Duration::from_secs(3);
/// The API's tokens live this long.
const API_TOKEN_LIFETIME: Duration = Duration::from_secs(3);
const RUN_FOR: Duration = Duration::from_secs(7);
const WORKERS: usize = 4;
const REQUEST_EVERY: Duration = Duration::from_millis(100);
const AUDIENCE: &str = "https://orders.example.com";

/// What the cluster and the token service know.
struct Cluster {
    clock: Clock,
    /// Service-account tokens the cluster issued, with their expiry.
    service_account_tokens: Mutex<HashMap<String, (usize, Instant)>>,
    /// API tokens the exchange issued, with their expiry.
    api_tokens: Mutex<HashMap<String, Instant>>,
    /// The service-account tokens (by number) that were exchanged.
    exchanged: Mutex<BTreeSet<usize>>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let clock = Clock::start();
    let cluster = Arc::new(Cluster {
        clock,
        service_account_tokens: Mutex::default(),
        api_tokens: Mutex::default(),
        exchanged: Mutex::default(),
    });
    let app = Router::new()
        .route("/token", post(exchange))
        .route("/orders", get(orders))
        .with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The pod's projected volume, kept up to date by the "kubelet".
    let volume = std::env::temp_dir().join(format!("kubernetes-workload-{}", std::process::id()));
    std::fs::create_dir_all(&volume)?;
    let token_path = volume.join("token");
    let kubelet = {
        let (cluster, volume) = (cluster.clone(), volume.clone());
        rotate(&cluster, &volume, 1)?;
        tokio::spawn(async move {
            for n in 2.. {
                tokio::time::sleep(ROTATE_EVERY).await;
                if let Err(error) = rotate(&cluster, &volume, n) {
                    eprintln!("kubelet: {error}");
                }
            }
        })
    };

    println!(
        "kubernetes_workload: the service-account token rotates every {ROTATE_EVERY:?}; \
         {WORKERS} workers call the API every {REQUEST_EVERY:?} for {RUN_FOR:?}\n"
    );

    // The workload: its token file, exchanged for the API's token.
    let source = TokenExchange::builder(
        format!("http://{addr}/token"),
        TokenFile::new(&token_path),
        token_type::JWT,
    )
    .audience(AUDIENCE)
    .requested_token_type(token_type::ACCESS_TOKEN)
    .build()?;
    let cache = TokenCache::builder(source).name("orders-api").build();
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let api = api.clone();
            let url = format!("http://{addr}/orders");
            tokio::spawn(async move {
                tokio::time::sleep(REQUEST_EVERY * worker as u32 / WORKERS as u32).await;
                let (mut ok, mut failed) = (0, 0);
                while clock.elapsed() < RUN_FOR {
                    let request = http::Request::get(url.as_str()).body(Empty::new()).unwrap();
                    match api.clone().oneshot(request).await {
                        Ok(response) => match support::read(response).await {
                            Ok(_) => ok += 1,
                            Err(error) => {
                                failed += 1;
                                clock.print(
                                    &format!("worker {worker}"),
                                    &format!("FAILED: {error}"),
                                );
                            }
                        },
                        Err(error) => {
                            failed += 1;
                            clock.print(&format!("worker {worker}"), &format!("FAILED: {error}"));
                        }
                    }
                    tokio::time::sleep(REQUEST_EVERY).await;
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (o, f) = worker.await?;
        ok += o;
        failed += f;
    }
    kubelet.abort();
    let _ = std::fs::remove_dir_all(&volume);

    let exchanged = cluster.exchanged.lock().unwrap().clone();
    let stats = cache.stats();
    println!(
        "\n{ok} requests succeeded, {failed} failed; {} exchanges used {} different \
         service-account tokens {exchanged:?}",
        stats.fetches,
        exchanged.len()
    );
    if failed > 0 {
        return Err(format!("{failed} requests failed").into());
    }
    if exchanged.len() < 2 {
        return Err("the rotated service-account token was never exchanged".into());
    }
    Ok(())
}

/// Writes service-account token `n` as the kubelet does: into a new
/// timestamped directory, then an atomic swap of the `..data` link that
/// `token` points through, then the old directory is removed.
fn rotate(cluster: &Cluster, volume: &Path, n: usize) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let exp = now.as_secs() + SERVICE_ACCOUNT_LIFETIME.as_secs();
    let claims = format!(
        r#"{{"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:shop:orders","aud":["sts"],"iat":{},"exp":{exp},"n":{n}}}"#,
        now.as_secs()
    );
    let jwt = format!(
        "{}.{}.signature",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    // Valid until its `exp` (whole seconds), as the cluster checks it.
    let valid_for = Duration::from_secs(exp).saturating_sub(now);
    cluster
        .service_account_tokens
        .lock()
        .unwrap()
        .insert(jwt.clone(), (n, Instant::now() + valid_for));

    let data = volume.join(format!("..{}_{n}", now.as_millis()));
    std::fs::create_dir(&data)?;
    std::fs::write(data.join("token"), &jwt)?;
    let link = volume.join("..data");
    let old = std::fs::read_link(&link).ok();
    let staged = volume.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(data.file_name().unwrap_or_default(), &staged)?;
    std::fs::rename(&staged, &link)?;
    if !volume.join("token").exists() {
        std::os::unix::fs::symlink(PathBuf::from("..data").join("token"), volume.join("token"))?;
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(volume.join(old))?;
    }
    cluster.clock.print(
        "kubelet",
        &format!("rotated the service-account token (#{n})"),
    );
    Ok(())
}

/// The security token service: RFC 8693 token exchange of a valid
/// service-account token for an API token.
async fn exchange(
    State(cluster): State<Arc<Cluster>>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let json = [("content-type", "application/json")];
    let refuse = |why: &str| {
        let body = format!(r#"{{"error":"invalid_request","error_description":"{why}"}}"#);
        (StatusCode::BAD_REQUEST, json, body)
    };
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("urn:ietf:params:oauth:grant-type:token-exchange")
        || field("subject_token_type") != Some(token_type::JWT)
        || field("audience") != Some(AUDIENCE)
    {
        return refuse("not a token exchange for this audience");
    }
    let subject = field("subject_token").unwrap_or_default();
    let known = cluster
        .service_account_tokens
        .lock()
        .unwrap()
        .get(subject)
        .copied();
    let n = match known {
        Some((n, expiry)) if Instant::now() < expiry => n,
        Some(_) => return refuse("the service-account token has expired"),
        None => return refuse("not a service-account token of this cluster"),
    };
    cluster.exchanged.lock().unwrap().insert(n);
    let mut api_tokens = cluster.api_tokens.lock().unwrap();
    let token = format!("api-{}", api_tokens.len() + 1);
    api_tokens.insert(token.clone(), Instant::now() + API_TOKEN_LIFETIME);
    cluster.clock.print(
        "token service",
        &format!("exchanged service-account token #{n} for {token}"),
    );
    let body = format!(
        r#"{{"access_token":"{token}","issued_token_type":"{}","token_type":"Bearer","expires_in":{}}}"#,
        token_type::ACCESS_TOKEN,
        API_TOKEN_LIFETIME.as_secs()
    );
    (StatusCode::OK, json, body)
}

/// The API: accepts the exchange's tokens until they expire.
async fn orders(State(cluster): State<Arc<Cluster>>, headers: HeaderMap) -> (StatusCode, String) {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    match cluster.api_tokens.lock().unwrap().get(token) {
        Some(expiry) if Instant::now() < *expiry => (StatusCode::OK, token.to_owned()),
        Some(_) => (StatusCode::UNAUTHORIZED, "token expired".to_owned()),
        None => (StatusCode::UNAUTHORIZED, "unknown token".to_owned()),
    }
}
