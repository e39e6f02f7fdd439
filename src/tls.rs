//! The rustls crypto provider of the crate's TLS clients (HTTPS token
//! requests, `rediss://`).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The process-wide default provider when the application installed one
/// (aws-lc-rs, say, for post-quantum key exchange), else ring.
#[cfg_attr(not(feature = "rustls"), allow(dead_code))]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(ring()))
}

/// Installs ring as the process-wide default provider, unless there is one
/// already (redis-rs builds its TLS settings from the default).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn install_default() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: there is one.
        let _ = ring().install_default();
    }
}

/// rustls' ring provider. rustls 0.23.48 deprecates it because ring has no
/// post-quantum key exchange; it stays the crate's fallback because it keeps
/// aws-lc's C library out of the build. An application that wants
/// post-quantum key exchange installs aws-lc-rs as the process-wide
/// default, which [`provider`] then uses.
#[allow(deprecated)]
fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
