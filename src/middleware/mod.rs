//! The tower middleware: [`TokenRefreshLayer`], [`TokenRefresh`], its
//! response futures and [`ResponseBody`].
//!
//! # The hot path
//!
//! A request sent while the cache holds a fresh token takes no lock, reads
//! no clock and allocates nothing. Everything below serves that; the rest
//! of the crate (refreshes, rejections, retries, stores) runs off it.
//!
//! ```text
//!  call ─► decide ─┬─ NoToken / own Authorization kept ─► passthrough
//!                  ├─ routes.select(uri) ─► no route ───► passthrough
//!                  └─ cache.fresh_credential()
//!                        │ version (1 atomic load) == this thread's snapshot's?
//!                        ├─ yes ─► clone the snapshot's header (its bytes are this thread's)
//!                        └─ no ──► load the published Entry (ArcSwap); `due` flag down?
//!                                    ├─ yes ─► snapshot::put: copy the header once per
//!                                    │         thread and token, then as above
//!                                    └─ no ──► slow path: wait for the single-flight refresh
//!       ─► header inserted where the request is ─► inner.call ─► Attempt::Sent { ticket }
//!
//!  poll ─► inner future ready ─► judge: content-type (gRPC?), status, rejection?
//!       ─► accepted(generation): 1 relaxed load unless the token is unconfirmed
//!       ─► Response<ResponseBody> (the response moves once, into the output)
//!
//!  off the hot path, each bumps the cache's version so snapshots look again:
//!    the refresh window opens ─► Entry::due raised by its timer task (on the runtime
//!                                that fetched it) or by the backstop thread
//!    a refresh publishes a token, a rejection drops one
//! ```
//!
//! In order:
//!
//! 1. **Settings.** The layer's routes and rejection classifier sit behind
//!    one `Arc`, cloned into each request's future (which judges the
//!    response with them).
//! 2. **Route.** The default layer has one catch-all route and does not
//!    look at the URI; [`TokenRoutes`] compares the origin without
//!    allocating.
//! 3. **Version and snapshots** (`cache/snapshot.rs`). Each cache has a
//!    version that changes whenever what a request may send changes. Each
//!    thread keeps, per cache, the credential it last took and the version
//!    it took it at; when the versions match, the credential is cloned from
//!    there: no shared pointer is loaded, and the header's reference count
//!    is on a copy of its bytes that only this thread's requests share.
//! 4. **The `due` flag and its timers** (`cache/entry.rs`,
//!    `cache/backstop.rs`). A published token is fresh until its refresh
//!    window opens. Rather than each request reading the clock, a timer
//!    task raises the entry's `due` flag (and bumps the version) when the
//!    window opens; a process-wide backstop thread raises it on time when
//!    that task's runtime is not being driven. From then until the next
//!    token is published, the slow path reads the clock.
//! 5. **Generation and ticket.** Each published token has a generation;
//!    the request's [`Ticket`](ticket::Ticket) (route and generation) lets a
//!    rejection drop that token only if it is still the current one, so a
//!    burst of 401s makes one refresh. This is correctness, not speed: it
//!    costs a 16-byte field.
//! 6. **Judging** (`attempt.rs`). One `content-type` lookup tells gRPC from
//!    the rest; the status and the classifier decide; a success confirms
//!    the token with one relaxed load. The response is wrapped in
//!    [`ResponseBody`] (which watches gRPC trailers when the status comes
//!    there) and moved once, into the output: the sent-at-once path is
//!    written out in [`ResponseFuture`] for that.
//!
//! What each piece buys, measured by taking it out (`cargo bench --bench
//! hot_path_paired`, 5 processes, two runs each, 2026-12-05; ours /
//! floor, the floor being a fixed header added by tower-http, about 140 ns
//! a request here):
//!
//! | piece | without it | buys |
//! |---|---|---|
//! | the `due` flag and timers (a clock read per request instead) | 1.24–1.25 (from 1.14–1.15) | ≈ 14 ns |
//! | snapshots and versions (the published entry loaded, its shared header cloned) | 1.23–1.24 | ≈ 12 ns |
//!
//! Taken out because they bought less than 2 %: a service's own copy of
//! its last credential in front of the snapshots (under 1 %, and it made a
//! service cloned per request 4–7 % slower), and a copy of the settings per
//! thread (nothing measurable on one thread or two). See
//! `benches/README.md` for the rest: where the remaining difference to the
//! floor goes.

mod attempt;
mod future;
mod layer;
mod no_token;
mod origin;
mod response_body;
mod retry;
mod retry_future;
mod routes;
mod second_attempt;
mod service;
mod settings;
mod ticket;
#[cfg(feature = "reqwest-middleware")]
mod token_refresh_middleware;
mod token_rejected;

pub use future::ResponseFuture;
pub use layer::TokenRefreshLayer;
pub use no_token::NoToken;
pub use origin::{InvalidOrigin, Origin};
pub use response_body::ResponseBody;
pub use retry::{NoRetry, RetryRejected};
pub use retry_future::RetryResponseFuture;
pub use routes::TokenRoutes;
pub use service::TokenRefresh;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use token_refresh_middleware::TokenRefreshMiddleware;
pub use token_rejected::{NotRetried, TokenRejected};
