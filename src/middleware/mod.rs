//! The tower middleware: [`TokenRefreshLayer`], [`TokenRefresh`] and its
//! [`ResponseFuture`].

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::TokenRefreshLayer;
pub use service::TokenRefresh;
