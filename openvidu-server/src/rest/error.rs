//! How REST failures are said: OpenVidu's status codes, with an empty body or its error JSON.
//!
//! A handler returns [`ApiError`]; its response carries the message as an extension, and the
//! [`error_body`] middleware turns it into `{"timestamp","status","error","message","path"}`
//! with the request path, so the conversion itself has no side effects.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::service::{ServiceError, now_ms};

/// A REST failure: a status and, for OpenVidu's "(err)" cases, a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: Option<String>,
}

/// The message of an error response, attached for [`error_body`].
#[derive(Clone, Debug)]
struct ErrorMessage(String);

impl ApiError {
    /// An empty-bodied error.
    pub fn empty(status: StatusCode) -> Self {
        Self { status, message: None }
    }

    /// An error with OpenVidu's error JSON body.
    pub fn with_message(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: Some(message.into()) }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::with_message(StatusCode::BAD_REQUEST, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ServiceError> for ApiError {
    /// The usual status of each failure; routes that answer differently map before this.
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        match e {
            E::Request(r) => {
                Self::with_message(StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST), r.to_string())
            }
            E::SessionNotFound(_) | E::ConnectionNotFound(_) | E::StreamNotFound(_) | E::RecordingNotFound(_) => {
                Self::empty(StatusCode::NOT_FOUND)
            }
            E::SessionExists(_) => Self::empty(StatusCode::CONFLICT),
            E::IpcamStream(_) => Self::empty(StatusCode::METHOD_NOT_ALLOWED),
            E::SessionNotActive(_) => Self::empty(StatusCode::NOT_ACCEPTABLE),
            E::UnknownRecipients(ids) => Self::with_message(
                StatusCode::NOT_ACCEPTABLE,
                format!("\"to\" array has connectionIds that are not part of the session: {ids:?}"),
            ),
            E::RecordingDisabled => Self::empty(StatusCode::NOT_IMPLEMENTED),
            E::RecordingRefused { status, .. } => {
                Self::empty(StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT))
            }
            E::RecordingInProgress(_) | E::RecordingNotInProgress(_) => Self::empty(StatusCode::CONFLICT),
            E::RecordingStarting(_) => Self::empty(StatusCode::NOT_ACCEPTABLE),
            E::MediaUnavailable(m) => Self::with_message(StatusCode::INTERNAL_SERVER_ERROR, m),
            E::Media(m) => Self::with_message(StatusCode::INTERNAL_SERVER_ERROR, m.to_string()),
            E::AlreadyPublishing(_) => Self::empty(StatusCode::CONFLICT),
            E::NotPublishing(_) => Self::empty(StatusCode::NOT_FOUND),
            E::Store(e) => {
                tracing::error!(error = %e, "store unavailable");
                Self::with_message(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable")
            }
            E::Io(e) => {
                tracing::error!(error = %e, "storage failure");
                Self::with_message(StatusCode::INTERNAL_SERVER_ERROR, "storage failure")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        if let Some(m) = self.message {
            r.extensions_mut().insert(ErrorMessage(m));
        }
        r
    }
}

/// Middleware: renders error messages as OpenVidu's error JSON with the request path, and logs
/// 5xx answers.
pub async fn error_body(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(%path, status = status.as_u16(), "request failed");
    }
    let Some(ErrorMessage(message)) = response.extensions_mut().remove::<ErrorMessage>() else {
        return response;
    };
    let body = serde_json::json!({
        "timestamp": now_ms(),
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or(""),
        "message": message,
        "path": path,
    });
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}
