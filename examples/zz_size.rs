use std::convert::Infallible;
use std::future::{Ready, ready};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Service, Layer, BoxError};
use tower_token_refresh::{TokenCache, TokenRefreshLayer, Token};
#[derive(Clone)]
struct Inner;
impl Service<Request<Empty<Bytes>>> for Inner {
    type Response = Response<()>; type Error = Infallible; type Future = Ready<Result<Response<()>, Infallible>>;
    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> { std::task::Poll::Ready(Ok(())) }
    fn call(&mut self, _: Request<Empty<Bytes>>) -> Self::Future { ready(Ok(Response::new(()))) }
}
fn main() {
    let cache = TokenCache::new(|| async { Ok::<_, BoxError>(Token::bearer("t")) });
    let s = TokenRefreshLayer::new(cache).layer(Inner);
    fn size_of_future<S: Service<Request<Empty<Bytes>>>>(_: &S) -> usize { std::mem::size_of::<S::Future>() }
    fn size_of_resp<S: Service<Request<Empty<Bytes>>>>(_: &S) -> usize { std::mem::size_of::<S::Response>() }
    println!("future {} response {} inner future {} request {}", size_of_future(&s), size_of_resp(&s), size_of_future(&Inner), std::mem::size_of::<Request<Empty<Bytes>>>());
}
