//! gRPC with tonic: a `Channel` wrapped in `TokenRefreshLayer`, so every call
//! carries a bearer token, and (with `.retry_rejected()`) a call whose token
//! the server revoked is retried once with a new one.
//!
//! ```sh
//! cargo run --example tonic_client
//! ```
//!
//! A tonic-health server runs on 127.0.0.1 behind an interceptor that
//! accepts only unexpired, unrevoked tokens issued by the example's token
//! source (an async closure issuing `token-1`, `token-2`, … that live 2
//! seconds) and answers `UNAUTHENTICATED` otherwise. The example makes a
//! unary `Check` call, revokes the token on the server, shows that the next
//! call still succeeds after exactly one refresh, then opens a
//! server-streaming `Watch` call and reads its first update. It prints the
//! cache's statistics and exits non-zero if any of that did not happen.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{BoxError, ServiceBuilder};
use tower_token_refresh::{CacheStats, Token, TokenCache, TokenRefreshLayer};

const TOKEN_LIFETIME: Duration = Duration::from_secs(2);

/// What the identity provider knows: the tokens it issued (with their
/// expiry) and those revoked since. Shared by the token source and the
/// server's interceptor.
#[derive(Clone, Default)]
struct Authority {
    issued: Arc<Mutex<HashMap<String, Instant>>>,
    revoked: Arc<Mutex<HashSet<String>>>,
    counter: Arc<AtomicUsize>,
    rejected: Arc<AtomicUsize>,
}

impl Authority {
    fn issue(&self) -> Token {
        let value = format!("token-{}", self.counter.fetch_add(1, Ordering::SeqCst) + 1);
        self.issued
            .lock()
            .unwrap()
            .insert(value.clone(), Instant::now() + TOKEN_LIFETIME);
        println!("  [token source] issued {value}, valid for {TOKEN_LIFETIME:?}");
        Token::bearer(value).expires_in(TOKEN_LIFETIME)
    }

    fn revoke(&self, token: &str) {
        self.revoked.lock().unwrap().insert(token.to_owned());
    }

    /// The server's interceptor.
    fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        let valid = self
            .issued
            .lock()
            .unwrap()
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
            && !self.revoked.lock().unwrap().contains(token);
        if valid {
            println!("  [server] accepted {token}");
            Ok(request)
        } else {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            println!("  [server] rejected {token:?}: UNAUTHENTICATED");
            Err(Status::unauthenticated("invalid or revoked token"))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let authority = Authority::default();
    let addr = start_server(authority.clone()).await?;
    println!("gRPC health server on http://{addr}\n");

    // The token source: any async closure returning a `Token`.
    let source = {
        let authority = authority.clone();
        move || {
            let authority = authority.clone();
            async move { Ok::<_, BoxError>(authority.issue()) }
        }
    };
    let cache = TokenCache::builder(source).name("orders-grpc").build();

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    // Retrying is opt-in: with it, a call whose token the server rejects
    // (UNAUTHENTICATED before the call started) is sent once more with a new
    // token, so the caller never sees the rejection.
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()).retry_rejected())
        .service(channel);
    let mut client = HealthClient::new(service);
    let orders = || HealthCheckRequest {
        service: "orders".into(),
    };
    let mut failures = Vec::new();

    println!("1. unary Check");
    let status = client.check(orders()).await?.into_inner().status();
    println!("   -> orders is {status:?}\n");
    if status != WireStatus::Serving {
        failures.push("the first Check did not answer SERVING");
    }

    println!("2. the server revokes token-1, then another unary Check");
    authority.revoke("token-1");
    let before = cache.stats();
    let status = client.check(orders()).await?.into_inner().status();
    let after = cache.stats();
    println!("   -> orders is {status:?}");
    println!(
        "   -> fetches +{}, refreshes after rejection +{}, retries +{}\n",
        after.fetches - before.fetches,
        after.refreshes_after_rejection - before.refreshes_after_rejection,
        after.retries - before.retries,
    );
    if status != WireStatus::Serving {
        failures.push("the Check after the revocation did not answer SERVING");
    }
    if after.fetches - before.fetches != 1 || after.retries - before.retries != 1 {
        failures.push("the revoked token was not replaced by exactly one refresh and one retry");
    }

    println!("3. server-streaming Watch");
    let mut updates = client.watch(orders()).await?.into_inner();
    match updates.message().await? {
        Some(update) => println!("   -> first update: orders is {:?}\n", update.status()),
        None => failures.push("the Watch stream ended without an update"),
    }

    report(&cache.stats(), &authority);
    if !failures.is_empty() {
        for failure in failures {
            println!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
    println!("OK: a revoked token cost one refresh and one retry, invisible to the caller");
    Ok(())
}

/// Starts a tonic-health server whose "orders" service is serving, behind
/// `authority`'s interceptor.
async fn start_server(authority: Authority) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", ServingStatus::Serving)
        .await;
    let service = InterceptedService::new(health, move |request| authority.check(request));
    tokio::spawn(async move {
        // Dropping the reporter would end `Watch` streams.
        let _reporter = reporter;
        if let Err(error) = Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
        {
            eprintln!("server failed: {error}");
        }
    });
    Ok(addr)
}

fn report(stats: &CacheStats, authority: &Authority) {
    println!("summary");
    println!(
        "  tokens issued: {}, calls rejected by the server: {}",
        authority.counter.load(Ordering::SeqCst),
        authority.rejected.load(Ordering::SeqCst)
    );
    println!(
        "  cache: fetches {}, failed {}, refreshes after a rejection {}, ahead of expiry {}",
        stats.fetches, stats.fetch_failures, stats.refreshes_after_rejection, stats.refreshes_ahead,
    );
    println!(
        "         retries {}, callers that waited {}, current token valid for {:.1?}",
        stats.retries,
        stats.waited,
        stats.time_left.as_duration().unwrap_or_default(),
    );
}
