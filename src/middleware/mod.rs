//! The tower middleware: [`TokenRefreshLayer`], [`TokenRefresh`], its
//! response futures and [`ResponseBody`].

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

pub use future::ResponseFuture;
pub use layer::TokenRefreshLayer;
pub use no_token::NoToken;
pub use origin::{InvalidOrigin, Origin};
pub use response_body::ResponseBody;
pub use retry::{NoRetry, RetryRejected};
pub use retry_future::RetryResponseFuture;
pub use routes::TokenRoutes;
pub use service::TokenRefresh;
