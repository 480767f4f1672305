//! HTTP Basic authentication `OPENVIDUAPP:<secret>`, compared in constant time, with the
//! `WWW-Authenticate` challenge the Java client waits for before it sends credentials.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

/// The expected `Authorization` credentials, decoded: `OPENVIDUAPP:<secret>`.
#[derive(Clone)]
pub struct Credentials(std::sync::Arc<[u8]>);

impl Credentials {
    /// Credentials for this secret.
    pub fn new(secret: &str) -> Self {
        Self(format!("OPENVIDUAPP:{secret}").into_bytes().into())
    }

    /// Whether an `Authorization` header value carries these credentials.
    pub fn accepts(&self, header_value: &[u8]) -> bool {
        let Some(encoded) = std::str::from_utf8(header_value)
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, v)| v.trim())
        else {
            return false;
        };
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(|given| bool::from(given.as_slice().ct_eq(&self.0)))
            .unwrap_or(false)
    }
}

/// Middleware: 401 with a Basic challenge unless the request carries the credentials.
pub async fn require_basic_auth(State(credentials): State<Credentials>, req: Request, next: Next) -> Response {
    let ok = req.headers().get(header::AUTHORIZATION).map(|v| credentials.accepts(v.as_bytes())).unwrap_or(false);
    if ok {
        return next.run(req).await;
    }
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"OpenVidu\""));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials() {
        let c = Credentials::new("MY_SECRET");
        let good = base64::engine::general_purpose::STANDARD.encode("OPENVIDUAPP:MY_SECRET");
        assert!(c.accepts(format!("Basic {good}").as_bytes()));
        assert!(c.accepts(format!("basic  {good} ").as_bytes()));
        let bad = base64::engine::general_purpose::STANDARD.encode("OPENVIDUAPP:MY_SECRE");
        assert!(!c.accepts(format!("Basic {bad}").as_bytes()));
        assert!(!c.accepts(b"Bearer x"));
        assert!(!c.accepts(b"Basic !!!"));
        assert!(!c.accepts(&[0xff, 0xfe]));
    }
}
