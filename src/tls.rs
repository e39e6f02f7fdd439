//! The rustls crypto provider of the crate's TLS clients (HTTPS token
//! requests, `rediss://`).

use rustls::crypto::CryptoProvider;

/// A client configuration trusting `roots`, with rustls' safe default
/// protocol versions and the process-wide default provider when the
/// application installed one that supports them (aws-lc-rs, say, for
/// post-quantum key exchange), else ring.
#[cfg(feature = "rustls")]
pub(crate) fn client_config(
    roots: rustls::RootCertStore,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    use rustls::ClientConfig;

    let installed = CryptoProvider::get_default().cloned().and_then(|provider| {
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()
    });
    installed
        .unwrap_or_else(|| {
            ClientConfig::builder_with_provider(std::sync::Arc::new(ring()))
                .with_safe_default_protocol_versions()
                // Fails only for a provider without cipher suites.
                .expect("ring supports rustls' default protocol versions")
        })
        .with_root_certificates(roots)
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
/// default, which the crate's clients then use.
#[allow(deprecated)]
fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
