//! The HTTP client that talks to token endpoints: any tower service, or the
//! default hyper-util client (with rustls when the `rustls` feature is on).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use crate::BoxError;

/// The response body a client hands back, boxed.
pub(crate) type ClientBody = UnsyncBoxBody<Bytes, BoxError>;

type ClientFuture = Pin<Box<dyn Future<Output = Result<Response<ClientBody>, BoxError>> + Send>>;

/// Sends one request; object safe so that sources are not generic over the
/// client.
trait SendRequest: Send + Sync + 'static {
    fn send(&self, request: Request<Full<Bytes>>) -> ClientFuture;
}

/// An HTTP client for token endpoints, cheap to clone.
///
/// Made from any tower service with [`HttpClient::new`] (so a client you
/// already configured, with your proxy or TLS settings, can be reused), or
/// [`HttpClient::default`]: hyper-util's client, with rustls and the webpki
/// roots (plus the system's roots with feature `native-roots`) when feature
/// `rustls` is on, plain HTTP otherwise.
///
/// Token requests are never sent through [`TokenRefresh`](crate::TokenRefresh):
/// they carry a marker that makes the layer pass them on untouched, so even a
/// client wrapped in the layer does not add a bearer token to them. Redirects
/// are never followed (use a client that does not follow them).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<dyn SendRequest>,
}

struct ServiceClient<S>(S);

impl<S, B> SendRequest for ServiceClient<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn send(&self, mut request: Request<Full<Bytes>>) -> ClientFuture {
        // Should the client be wrapped in `TokenRefreshLayer`: no token on
        // a token request.
        request.extensions_mut().insert(crate::NoToken);
        let mut service = self.0.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(request).await.map_err(Into::into)?;
            Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
        })
    }
}

impl HttpClient {
    /// Uses `service` to send token requests: any tower service taking
    /// `http::Request<Full<Bytes>>`, such as a hyper-util client.
    pub fn new<S, B>(service: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: Arc::new(ServiceClient(service)),
        }
    }

    pub(crate) fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> impl Future<Output = Result<Response<ClientBody>, BoxError>> + Send + use<> {
        self.inner.send(request)
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::{TokioExecutor, TokioTimer};

        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_timer(TokioTimer::new());
        #[cfg(feature = "rustls")]
        {
            Self::new(builder.build::<_, Full<Bytes>>(tls::connector()))
        }
        #[cfg(not(feature = "rustls"))]
        {
            Self::new(builder.build_http::<Full<Bytes>>())
        }
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

#[cfg(feature = "rustls")]
mod tls {
    use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
    use hyper_util::client::legacy::connect::HttpConnector;
    use rustls::RootCertStore;

    /// HTTPS (and loopback HTTP) with the webpki roots, plus the system's
    /// roots with `native-roots`; the process-wide rustls crypto provider
    /// if the application installed one, else ring (the default is never
    /// changed).
    pub(super) fn connector() -> HttpsConnector<HttpConnector> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        #[cfg(feature = "native-roots")]
        {
            let native = rustls_native_certs::load_native_certs();
            for certificate in native.certs {
                let _ = roots.add(certificate);
            }
        }
        let config = crate::tls::client_config(roots).with_no_client_auth();
        HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build()
    }
}
