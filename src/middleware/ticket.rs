//! [`Ticket`]: which token a request was sent with.

/// The route a request was sent on and the generation of its token, so that
/// a rejection drops that token only if it is still the current one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) route: usize,
    pub(crate) generation: u64,
}
