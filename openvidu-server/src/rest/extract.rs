//! Our own extractors, so bad input is answered as OpenVidu answers it (400, 413, 415) instead of
//! axum's defaults.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body: `None` when the request has no body, else a JSON object parsed into `T`.
///
/// A body with a non-JSON `Content-Type` is 415, a body over the limit 413, malformed JSON,
/// a non-object or wrong member types 400.
pub struct ApiJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::empty(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if json_type != Some(true) {
            return Err(ApiError::with_message(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content type not supported: send application/json",
            ));
        }
        // One pass: the body must be an object, then it is parsed straight into `T`.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        }
        serde_json::from_slice(&bytes).map(|v| Self(Some(v))).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::bad_request(format!("Type error in body: {e}")),
                _ => ApiError::bad_request(format!("JSON parse error: {e}")),
            }
        })
    }
}

impl<T> ApiJson<T> {
    /// The body, or 400 when it is missing.
    pub fn required(self) -> Result<T, ApiError> {
        self.0.ok_or_else(|| ApiError::bad_request("The request body is required"))
    }
}

/// Query parameters, with a 400 in OpenVidu's format for bad values.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path segments as text; routes turn them into ids, answering their own status for bad ones.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Self(p))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}
