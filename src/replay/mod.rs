//! Sending a request body a second time, for the one retry after a
//! rejected token: [`ReplayableBody`], [`Replay`] and [`ReplayBody`].

mod plan;
mod recording;
mod replayable_body;

pub use plan::Replay;
pub use recording::ReplayBody;
pub use replayable_body::ReplayableBody;

/// Default [replay limit](crate::TokenRefreshLayer::replay_limit): the most
/// bytes of a request body kept to send it again.
pub const DEFAULT_REPLAY_LIMIT: usize = 64 * 1024;

const OVER_LIMIT: &str = "the request body is larger than the replay limit";
