//! What the gate reads of a request, whatever framework carried it.

use std::net::IpAddr;

/// A request as the gate sees it. Each framework adapter implements it for
/// its own request type (`http` 1 for tower and axum, `http` 0.2 for
/// actix-web); header names are lowercase.
///
/// # Examples
///
/// A request type of another framework:
///
/// ```
/// use std::net::IpAddr;
/// use tollgate_core::gate::RequestView;
///
/// struct MyRequest {
///     method: String,
///     path: String,
///     query: Option<String>,
///     headers: Vec<(String, Vec<u8>)>, // lowercase names
///     peer: Option<IpAddr>,
/// }
///
/// impl RequestView for MyRequest {
///     fn method(&self) -> &str {
///         &self.method
///     }
///     fn path(&self) -> &str {
///         &self.path
///     }
///     fn query(&self) -> Option<&str> {
///         self.query.as_deref()
///     }
///     fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
///         self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_slice())
///     }
///     fn peer(&self) -> Option<IpAddr> {
///         self.peer
///     }
/// }
///
/// let preflight = MyRequest {
///     method: "OPTIONS".into(),
///     path: "/reports".into(),
///     query: None,
///     headers: vec![("access-control-request-method".into(), b"GET".to_vec())],
///     peer: None,
/// };
/// assert!(preflight.is_preflight());
/// ```
pub trait RequestView {
    /// The method, e.g. `GET`.
    fn method(&self) -> &str;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The query, without `?`.
    fn query(&self) -> Option<&str>;
    /// Every value of the header `name`, in order.
    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]>;
    /// The connection's peer address, if the server records it.
    fn peer(&self) -> Option<IpAddr>;

    /// What the server must do so that [`peer`](Self::peer) answers: the
    /// fix named in the error (and the one log line at `error`) when
    /// address binding is on and the peer is unknown.
    fn peer_setup(&self) -> &'static str {
        "have the server record the connection's peer address"
    }

    /// How the request expects to be refused: gRPC when its `Content-Type`
    /// is `application/grpc...`, else HTTP.
    fn protocol(&self) -> crate::Protocol {
        crate::Protocol::of_content_type(self.header_values("content-type").next())
    }

    /// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
    fn is_preflight(&self) -> bool {
        self.method() == "OPTIONS"
            && self
                .header_values("access-control-request-method")
                .next()
                .is_some()
    }
}

/// Header names the gate reads after verification (client address).
pub(crate) const FORWARDED: &str = "forwarded";
pub(crate) const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// What the gate still needs of a request once it has to wait for keys:
/// owned, so the request itself can move on.
#[derive(Debug)]
pub(crate) struct RequestFacts {
    method: String,
    path: String,
    query: Option<String>,
    peer: Option<IpAddr>,
    forwarded: Vec<Box<[u8]>>,
    x_forwarded_for: Vec<Box<[u8]>>,
}

impl RequestFacts {
    pub(crate) fn of<R: RequestView>(req: &R) -> Self {
        let owned = |name| req.header_values(name).map(Box::from).collect();
        RequestFacts {
            method: req.method().to_owned(),
            path: req.path().to_owned(),
            query: req.query().map(str::to_owned),
            peer: req.peer(),
            forwarded: owned(FORWARDED),
            x_forwarded_for: owned(X_FORWARDED_FOR),
        }
    }
}

impl RequestView for RequestFacts {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        let values: &[Box<[u8]>] = match name {
            FORWARDED => &self.forwarded,
            X_FORWARDED_FOR => &self.x_forwarded_for,
            _ => &[],
        };
        values.iter().map(|v| &**v)
    }
    fn peer(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// An `http` 1 request, with the peer address found by `peer`: what the
/// tower adapter hands the gate.
///
/// ```
/// use tollgate_core::gate::{HttpRequest, RequestView};
///
/// let req = http::Request::get("/reports?page=2").body(())?;
/// let view = HttpRequest::new(&req, Some("192.0.2.1".parse()?));
/// assert_eq!((view.path(), view.query()), ("/reports", Some("page=2")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct HttpRequest<'r, B> {
    request: &'r http::Request<B>,
    peer: Option<IpAddr>,
}

impl<'r, B> HttpRequest<'r, B> {
    /// The request and its peer address.
    pub fn new(request: &'r http::Request<B>, peer: Option<IpAddr>) -> Self {
        HttpRequest { request, peer }
    }
}

/// The fix for an `http` 1 server that records no peer address.
pub(crate) const HTTP_PEER_SETUP: &str = "with axum, serve \
    `app.into_make_service_with_connect_info::<SocketAddr>()` \
    (`axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())`); \
    with another tower server, put the peer's `SocketAddr` into the request's extensions \
    or set `AuthLayer::peer_address`";

impl<B> RequestView for HttpRequest<'_, B> {
    fn method(&self) -> &str {
        self.request.method().as_str()
    }
    fn path(&self) -> &str {
        self.request.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.request.uri().query()
    }
    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        self.request
            .headers()
            .get_all(name)
            .into_iter()
            .map(http::HeaderValue::as_bytes)
    }
    fn peer(&self) -> Option<IpAddr> {
        self.peer
    }
    fn peer_setup(&self) -> &'static str {
        HTTP_PEER_SETUP
    }
}
