//! [`Settings`]: what a layer's services and their response futures share.

use super::TokenRoutes;

/// The routes and the rejection classifier of a layer, shared (behind an
/// `Arc`) by a service, its clones and their response futures.
#[derive(Debug, Clone)]
pub(crate) struct Settings<C> {
    pub(crate) routes: TokenRoutes,
    pub(crate) classifier: C,
    /// Requests that already have an `Authorization` header keep it.
    pub(crate) keep_existing: bool,
}
