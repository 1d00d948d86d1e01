//! Errors as the docker CLI needs them: `{"message": "..."}` with `Content-Type:
//! application/json` exactly (with a charset the CLI prints the raw JSON), and the status
//! code that carries the meaning (404 makes `docker run` pull; 409 is a conflict).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::engine::LookupError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

impl From<LookupError> for ApiError {
    fn from(error: LookupError) -> Self {
        match error {
            LookupError::NotFound(_) => Self::not_found(error.to_string()),
            LookupError::Ambiguous(_) => Self::bad_request(error.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON response with the exact content type the CLI expects.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

/// A body parsed as JSON, or a 400 that says what is wrong with it.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// The body, or 413/400 as JSON (axum's own rejections are plain text).
pub fn body_bytes(body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>) -> ApiResult<bytes::Bytes> {
    body.map_err(|rejection| ApiError::new(rejection.status(), format!("request body: {}", rejection.body_text())))
}
