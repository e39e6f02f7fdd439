//! The tower middleware: [`TokenRefreshLayer`], [`TokenRefresh`], its
//! [`ResponseFuture`] and [`ResponseBody`].

mod destination;
mod front;
mod future;
mod layer;
mod response_body;
mod retry;
mod service;
mod settings;
mod shards;

pub use destination::{InvalidOrigin, Origin, TokenRoutes};
pub use future::ResponseFuture;
pub use layer::TokenRefreshLayer;
pub use response_body::ResponseBody;
pub use service::TokenRefresh;
