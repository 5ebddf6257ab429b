//! Conversions between actix-web (on `http` 0.2) and the core gate (on
//! `http` 1): the request view, responses, statuses and credit headers.

use actix_web::HttpMessage;
use actix_web::HttpResponse;
use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use tollgate_core::gate::{Admitted, Authentication, RequestView};
use tollgate_core::policy::Meter;
use tollgate_core::{Error, gate::Rejection};

/// An actix-web request as the gate sees it.
pub(crate) struct View<'r>(pub(crate) &'r ServiceRequest);

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        self.0.method().as_str()
    }
    fn path(&self) -> &str {
        self.0.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.uri().query()
    }
    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        self.0.headers().get_all(name).map(HeaderValue::as_bytes)
    }
    fn peer(&self) -> Option<std::net::IpAddr> {
        self.0.peer_addr().map(|a| a.ip())
    }
    fn peer_setup(&self) -> &'static str {
        "actix-web records no peer address for this listener (a Unix socket?); \
         serve over TCP (`HttpServer::bind`), or drop address binding"
    }
}

/// Renders an error as core does, into an actix response, with the
/// [`Error`] in the response extensions.
pub fn render(err: &Error, realm: Option<&str>) -> HttpResponse {
    respond(Rejection::render(err.clone(), realm))
}

/// Copies core's answer to a rejection into an actix response, with the
/// [`Error`] in its extensions.
pub(crate) fn respond(rejection: Rejection) -> HttpResponse {
    let mut out = convert(rejection.response);
    out.extensions_mut().insert(rejection.error);
    out
}

/// Copies an answer of core's (status, headers, body) into an actix response.
pub(crate) fn convert(resp: http::Response<String>) -> HttpResponse {
    let mut out = HttpResponse::build(status_from(resp.status()));
    for (name, value) in resp.headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append_header((n, v));
        }
    }
    out.body(resp.into_body())
}

/// Puts what the gate admitted into the request; returns the meter.
pub(crate) fn admit(req: &ServiceRequest, admitted: Admitted) -> Option<std::sync::Arc<Meter>> {
    let mut ext = req.extensions_mut();
    ext.insert(Authentication::Token(admitted.token));
    if let Some(meter) = &admitted.meter {
        ext.insert(meter.clone());
    }
    admitted.meter
}

fn status_from(status: http::StatusCode) -> StatusCode {
    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// actix-web's status (`http` 0.2) as core's (`http` 1).
pub(crate) fn status_of(status: StatusCode) -> http::StatusCode {
    http::StatusCode::from_u16(status.as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// Writes `Credits-Limit` and `Credits-Remaining`.
pub(crate) fn credit_headers(headers: &mut HeaderMap, meter: &Meter) {
    for (name, value) in meter.credit_headers() {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}
