//! Captures everything `tracing` prints, at TRACE level, as text.

use std::io;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// Captured output; capture lasts while the returned guard lives, on this
/// thread (use a current-thread runtime).
#[derive(Clone, Default)]
pub struct Events {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl Events {
    pub fn capture() -> (Self, DefaultGuard) {
        // tracing-core decides a callsite's interest once, when it is first
        // hit. With a single live dispatcher (this capture), it asks only
        // the dispatcher of the thread that hits it: a test on another
        // thread, without a subscriber, then caches "never" for that
        // callsite, and this capture misses its events (1 run in 5 when
        // several capturing tests run at once). A second dispatcher kept
        // alive for the whole run makes it ask every live dispatcher.
        static KEEP_TWO: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        KEEP_TWO
            .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let events = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(events.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // Callsites first hit on other test threads (with no subscriber)
        // may have cached "never": recompute with this subscriber counted.
        tracing::callsite::rebuild_interest_cache();
        (events, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl io::Write for Events {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Events {
    type Writer = Events;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
