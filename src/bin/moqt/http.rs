//! The command's plain HTTP, on hyper: the relay's listener (`/certificate.sha256`, `/health`,
//! `/metrics`) and the client that fetches a development relay's fingerprint for `http://` URLs.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use moqt::relay::Relay;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};

use crate::metrics;

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long fetching a fingerprint may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The most HTTP connections served at once: the answers are tiny, so a client holding more open
/// (each may idle up to the header timeout) is refused, and memory stays bounded.
pub const MAX_HTTP_CONNECTIONS: usize = 64;

/// The most of a `/certificate.sha256` answer read (64 hex digits and a newline, with room).
const MAX_FINGERPRINT_BODY: usize = 1024;

/// Serves the relay's plain-HTTP answers on `listener` until the task is dropped. Every answer
/// carries `Access-Control-Allow-Origin: *`, as the reference relay's do: a web player on another
/// origin fetches `/certificate.sha256` before it connects.
pub async fn serve(listener: TcpListener, fingerprint: String, relay: Relay) {
    let fingerprint = Bytes::from(fingerprint);
    let registry = std::sync::Arc::new(metrics::registry(relay));
    let slots = Slots::new(MAX_HTTP_CONNECTIONS);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%err, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the bound the connection is closed unanswered.
        let Some(slot) = slots.take() else {
            tracing::debug!("http: {MAX_HTTP_CONNECTIONS} connections open, refusing another");
            continue;
        };
        let (fingerprint, registry) = (fingerprint.clone(), registry.clone());
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let response = answer(request.method(), request.uri().path(), &fingerprint, &registry);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                tracing::debug!(%err, "http: connection ended");
            }
            drop(slot);
        });
    }
}

/// Connections being served, at most a fixed number: one slot per connection, given back when it
/// ends.
struct Slots(std::sync::Arc<tokio::sync::Semaphore>);

impl Slots {
    fn new(max: usize) -> Self {
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(max)))
    }

    /// A slot for one more connection, or `None` when all are taken.
    fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// The answer to one request.
fn answer(method: &Method, path: &str, fingerprint: &Bytes, registry: &Registry) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, content_type, body) = if method != Method::GET && method != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, TEXT, Bytes::from_static(b"only GET\n"))
    } else {
        match path {
            "/certificate.sha256" => (StatusCode::OK, TEXT, fingerprint.clone()),
            "/health" => (StatusCode::OK, TEXT, Bytes::from_static(b"ok")),
            "/metrics" => match metrics::render(registry) {
                Ok(text) => (StatusCode::OK, metrics::CONTENT_TYPE, Bytes::from(text)),
                Err(err) => {
                    tracing::warn!(%err, "http: cannot render /metrics");
                    (StatusCode::INTERNAL_SERVER_ERROR, TEXT, Bytes::from_static(b"cannot render metrics\n"))
                }
            },
            _ => (StatusCode::NOT_FOUND, TEXT, Bytes::from_static(b"not found")),
        }
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

/// `GET http://host:port/certificate.sha256` for the development URL `url`: the relay's
/// certificate SHA-256 as hex (64 digits, checked here; the trust parser checks the digits).
pub async fn fetch_fingerprint(url: &url::Url) -> Result<String> {
    let host = match url.host() {
        Some(url::Host::Ipv6(addr)) => addr.to_string(),
        Some(host) => host.to_string(),
        None => bail!("{url}: no host"),
    };
    let port = url.port().unwrap_or(80);
    let authority = format!("{}:{port}", url.host_str().unwrap_or(&host));
    let fetch = async {
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("cannot fetch the certificate fingerprint from {authority}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("cannot fetch the certificate fingerprint from {authority}"))?;
        // Drives the connection; it ends when `sender` is dropped.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "http client: connection ended");
            }
        });
        let request = Request::get("/certificate.sha256")
            .header(header::HOST, &authority)
            .body(Empty::<Bytes>::new())
            .with_context(|| format!("{url}: cannot make a request for it"))?;
        let response =
            sender.send_request(request).await.with_context(|| format!("GET http://{authority}/certificate.sha256"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_FINGERPRINT_BODY)
            .collect()
            .await
            .map_err(|err| anyhow!("GET http://{authority}/certificate.sha256: {err}"))?
            .to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow!("timed out fetching /certificate.sha256"))??;
    let body = String::from_utf8_lossy(&body);
    let body = body.trim();
    if !status.is_success() {
        bail!("{url}: /certificate.sha256 answered {status}");
    }
    if body.len() != 64 {
        bail!("{url}: /certificate.sha256 did not return a SHA-256 ({body:?})");
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_beyond_the_bound_find_no_slot_until_one_ends() {
        let slots = Slots::new(MAX_HTTP_CONNECTIONS);
        let mut held: Vec<_> = (0..MAX_HTTP_CONNECTIONS).map(|_| slots.take().expect("a slot")).collect();
        assert!(slots.take().is_none(), "a slot beyond {MAX_HTTP_CONNECTIONS}");
        held.pop();
        assert!(slots.take().is_some(), "a slot once a connection ended");
    }
}
