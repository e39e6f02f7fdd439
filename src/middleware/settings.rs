//! [`Settings`]: what a layer's services and their response futures share.

use super::TokenRoutes;

/// The routes and the rejection classifier of a layer, shared by its
/// services and their futures. Each thread takes its references from a
/// copy of its own ([`Shards`](super::shards::Shards)); aligned so that two
/// copies' reference counts never share a cache line.
#[derive(Debug, Clone)]
#[repr(align(128))]
pub(crate) struct Settings<C> {
    pub(crate) routes: TokenRoutes,
    pub(crate) classifier: C,
    /// Requests that already have an `Authorization` header keep it.
    pub(crate) keep_existing: bool,
}
