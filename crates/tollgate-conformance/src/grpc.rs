//! gRPC over loopback for the adapters' tests: tonic's own server and
//! client with a raw-bytes codec (no protobuf), and one unary method,
//! [`SAY`], that answers `<subject>: <message>` from the token a Tollgate
//! layer put into the request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use tollgate_core::gate::Authentication;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

pub use tonic;

/// The path of the echo method.
pub const SAY: &str = "/tollgate.test.Echo/Say";

/// Messages are their bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A response body a Tollgate layer can also build its own answers in
/// (`From<String>`): tonic's body, or Tollgate's text.
#[derive(Debug)]
pub struct GrpcBody(tonic::body::Body);

impl From<String> for GrpcBody {
    fn from(text: String) -> Self {
        GrpcBody(tonic::body::Body::new(text))
    }
}

impl http_body::Body for GrpcBody {
    type Data = Bytes;
    type Error = Status;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The echo service: tonic's unary handling of [`SAY`]; any other path is
/// `UNIMPLEMENTED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

type Answer = http::Response<GrpcBody>;

impl tower_service::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let subject = match req.extensions().get::<Authentication>() {
            Some(Authentication::Token(token)) => token.subject().unwrap_or("?").to_owned(),
            _ => "anonymous".to_owned(),
        };
        if req.uri().path() != SAY {
            let status = Status::unimplemented("no such method").into_http();
            return Box::pin(async move { Ok(status.map(GrpcBody)) });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            let resp = grpc.unary(Say(subject), req).await;
            Ok(resp.map(GrpcBody))
        })
    }
}

/// The method itself.
struct Say(String);

impl tower_service::Service<tonic::Request<Bytes>> for Say {
    type Response = tonic::Response<Bytes>;
    type Error = Status;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<Bytes>) -> Self::Future {
        let mut text = format!("{}: ", self.0).into_bytes();
        text.extend_from_slice(req.get_ref());
        std::future::ready(Ok(tonic::Response::new(Bytes::from(text))))
    }
}

/// Calls [`SAY`] at `addr` with `message`, the `metadata` given (e.g.
/// `authorization`), over a fresh HTTP/2 connection.
///
/// # Errors
///
/// The call's gRPC status.
///
/// # Panics
///
/// When the server cannot be reached.
pub async fn say(
    addr: SocketAddr,
    message: &str,
    metadata: &[(&'static str, String)],
) -> Result<tonic::Response<Bytes>, Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a loopback URL")
        .connect()
        .await
        .expect("the gRPC server is up");
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(Bytes::from(message.to_owned()));
    for (name, value) in metadata {
        request
            .metadata_mut()
            .insert(*name, value.parse().expect("an ASCII metadata value"));
    }
    client
        .unary(request, http::uri::PathAndQuery::from_static(SAY), RawCodec)
        .await
}
