//! Progress streams: docker's JSON messages, its human sizes and bars, sent as they come.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use super::super::error::{ApiError, ApiResult};

/// One JSON message of a progress stream, as dockerd's `jsonmessage` writes it.
#[derive(Debug, Default, Serialize)]
pub(super) struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub(super) progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stream: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

/// A message as sent: JSON and `\r\n`, like dockerd's encoder.
pub(super) fn encode(value: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    line.extend_from_slice(b"\r\n");
    Bytes::from(line)
}

pub(super) fn status(text: impl Into<String>) -> Bytes {
    encode(&JsonMessage {
        status: Some(text.into()),
        ..JsonMessage::default()
    })
}

/// A layer's status line: `{"status":"Pull complete","progressDetail":{},"id":"bad46e9ee236"}`.
pub(super) fn layer_status(text: &str, layer: String, progress: Option<(u64, u64)>) -> Bytes {
    encode(&JsonMessage {
        status: Some(text.to_owned()),
        progress_detail: Some(match progress {
            Some((current, total)) => ProgressDetail {
                current: Some(current),
                total: Some(total),
            },
            None => ProgressDetail::default(),
        }),
        progress: progress.map(|(current, total)| progress_bar(current, total)),
        id: Some(layer),
        stream: None,
    })
}

/// The error of a stream that has begun: the CLI prints it and exits 1.
fn error_message(message: &str) -> Bytes {
    #[derive(Serialize)]
    struct Detail<'a> {
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Failure<'a> {
        #[serde(rename = "errorDetail")]
        error_detail: Detail<'a>,
        error: &'a str,
    }
    encode(&Failure {
        error_detail: Detail { message },
        error: message,
    })
}

/// Go's `%.4g` for `value` in [1, 1000), as docker's `units.HumanSize` prints sizes.
fn four_digits(value: f64) -> String {
    let integer_digits = if value >= 100.0 {
        3
    } else if value >= 10.0 {
        2
    } else {
        1
    };
    let text = format!("{value:.*}", 4 - integer_digits);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// docker's `units.HumanSize`: `116B`, `32.77kB`, `1.065MB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if bytes == 0 {
        return "0B".to_owned();
    }
    format!("{}{}", four_digits(value), UNITS[unit])
}

/// The bar dockerd renders into `progress`: `[=>    ]  32.77kB/1.065MB`.
fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let filled = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let bar = format!("[{}>{}] ", "=".repeat(filled), " ".repeat(50 - filled));
    if current > total {
        return format!("{bar}{:>8}", human_size(current));
    }
    format!("{bar}{:>8}/{}", human_size(current), human_size(total))
}

/// What the work behind a progress stream says.
pub(super) enum Progress {
    Message(Bytes),
    /// Before the first message: the HTTP error; after it: the in-band error message.
    Fail(ApiError),
}

/// `200`, `application/json`, chunked: `first`, then each message as it comes.
pub(super) fn progress_stream(first: Bytes, receiver: mpsc::UnboundedReceiver<Progress>) -> ApiResult<Response> {
    let rest = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let bytes = match receiver.recv().await? {
            Progress::Message(bytes) => bytes,
            Progress::Fail(error) => error_message(&error.message),
        };
        Some((Ok::<_, std::convert::Infallible>(bytes), receiver))
    });
    let body = Body::from_stream(futures_util::stream::iter([Ok(first)]).chain(rest));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(ApiError::internal)
}

/// A finished list of messages as a JSON stream.
pub(super) fn messages(lines: Vec<Bytes>) -> Response {
    let body: Vec<u8> = lines.iter().flat_map(|b| b.iter().copied()).collect();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_are_rendered_like_dockers() {
        assert_eq!(human_size(116), "116B");
        assert_eq!(human_size(32768), "32.77kB");
        assert_eq!(human_size(1_064_755), "1.065MB");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(
            progress_bar(32768, 1_064_755),
            "[=>                                                 ]  32.77kB/1.065MB"
        );
        assert_eq!(
            progress_bar(116, 116),
            "[==================================================>]     116B/116B"
        );
    }

    #[test]
    fn errors_in_a_stream_are_dockerds() {
        assert_eq!(
            String::from_utf8(error_message("boom").to_vec()).expect("utf-8"),
            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n"
        );
    }
}
