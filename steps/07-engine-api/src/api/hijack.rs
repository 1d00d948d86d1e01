//! The connection upgrade docker uses for attach and exec: the client asks `Upgrade: tcp`,
//! the server answers `101 UPGRADED`, and from then on the socket is a raw two-way stream
//! (stdin in; output out, framed unless the process has a tty). A `200` with a stream is
//! refused by the CLI ("unable to upgrade to tcp, received 200").

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ApiError;
use crate::stdcopy;

pub type Client = TokioIo<Upgraded>;

// ANCHOR: upgrade
/// Answers 101 and runs `then` on the upgraded connection once hyper hands it over.
pub fn upgrade<F, Fut>(request: &mut Request, then: F) -> Result<Response, ApiError>
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if !request.headers().contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request(
            "this endpoint streams over an upgraded connection: send `Connection: Upgrade` and `Upgrade: tcp`",
        ));
    }
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => then(TokioIo::new(upgraded)).await,
            Err(error) => tracing::debug!("upgrade failed: {error}"),
        }
    });
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    Ok(response)
}
// ANCHOR_END: upgrade

/// Copies the monitor's stdcopy frames to the client: as they are, or (tty) just the
/// payloads. Returns at the monitor's EOF.
pub async fn frames_to_client(
    mut from: impl tokio::io::AsyncRead + Unpin,
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    tty: bool,
) {
    let mut buffer = vec![0u8; 32 * 1024];
    let mut pending = Vec::new();
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let written = if tty {
            pending.extend_from_slice(&buffer[..read]);
            let mut raw = Vec::new();
            for (_, payload) in stdcopy::take_frames(&mut pending) {
                raw.extend_from_slice(&payload);
            }
            to.write_all(&raw).await
        } else {
            to.write_all(&buffer[..read]).await
        };
        if written.is_err() || to.flush().await.is_err() {
            break;
        }
    }
}
