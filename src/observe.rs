//! Observe: the numbers an operator watches, and readiness, over HTTP.
//!
//! `GET /healthz` answers 200 while the process serves at all (liveness);
//! `GET /metrics` answers in the Prometheus text format; `GET /ready` answers 200 when the
//! instance is consuming with every partition it holds caught up (no replay under way, no
//! rebalance in progress), 503 before that and once shutdown has begun. Counters are atomics
//! updated once per batch.
//!
//! With a [`HotPage`], `GET /` is the live hot-words page and `GET /api/hot` its JSON (see
//! [`page`](crate::page)); a Redis failure there is a 503 with the reason in the JSON.

use std::sync::Arc;

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics;
pub use crate::metrics::Metrics;
use crate::page::{self, HotPage};

/// Bounds on the HTTP endpoint, which anyone on the network may reach.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A client must send its request head within this (slow clients cannot hold a slot).
    pub header_timeout: Duration,
    /// A connection is closed after this, whatever it is doing.
    pub connection_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `/metrics`, `/ready` and `/healthz` (and with `page`, `/` and `/api/hot`) on
/// `listener` until `stop` is cancelled, one request a connection (HTTP/1.1), within `limits`.
/// A failed accept (out of file descriptors, say) backs off, 10 ms doubling up to 1 s, instead
/// of spinning.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    page: Option<Arc<HotPage>>,
    stop: CancellationToken,
    limits: HttpLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore stays open"),
        };
        let socket = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    backoff = ACCEPT_BACKOFF_FIRST;
                    socket
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Cannot accept an HTTP connection.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
        };
        let metrics = Arc::clone(&metrics);
        let page = page.clone();
        tokio::spawn(async move {
            let _slot = permit;
            let service = service_fn(move |request: Request<Incoming>| {
                let (metrics, page) = (Arc::clone(&metrics), page.clone());
                async move {
                    let (method, path) = (request.method(), request.uri().path());
                    let response = match (page, path) {
                        (Some(page), "/" | "/api/hot")
                            if method == Method::GET || method == Method::HEAD =>
                        {
                            respond_page(&page, &metrics, path).await
                        }
                        _ => respond(&metrics, method, path),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(socket), service);
            let _ = tokio::time::timeout(limits.connection_timeout, connection).await;
        });
    }
}

const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The answer to `method path`.
fn respond(metrics: &Metrics, method: &Method, path: &str) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, body, content_type) = if method != Method::GET && method != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".to_owned(),
            TEXT,
        )
    } else {
        match path {
            "/metrics" => (StatusCode::OK, metrics.render(), metrics::CONTENT_TYPE),
            "/ready" if metrics.is_ready() => (StatusCode::OK, "ready\n".to_owned(), TEXT),
            "/ready" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready\n".to_owned(),
                TEXT,
            ),
            "/healthz" => (StatusCode::OK, "alive\n".to_owned(), TEXT),
            _ => (
                StatusCode::NOT_FOUND,
                "try /metrics, /ready or /healthz\n".to_owned(),
                TEXT,
            ),
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The live page, or its JSON: 200, or 503 when Redis could not be read.
async fn respond_page(page: &HotPage, metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if path == "/" {
        (
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(page::HTML.as_bytes()),
        )
    } else {
        let answer = page.answer(metrics.summary()).await;
        let status = match answer.error {
            None => StatusCode::OK,
            Some(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let json = serde_json::to_vec(&answer).expect("the answer serialises");
        (status, "application/json", Bytes::from(json))
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    // Live numbers: never from a cache between here and the viewer.
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// Asks the endpoint at `addr` (`host:port`) for `path`: whether it answered 200 within
/// `timeout`. For a container's health check, which has no HTTP client of its own.
pub fn probe(addr: &str, path: &str, timeout: std::time::Duration) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} resolves to no address")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 16];
    let n = stream.read(&mut head)?;
    Ok(head[..n].starts_with(b"HTTP/1.1 200"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_sees_healthz_answer_200() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            Arc::new(Metrics::default()),
            None,
            stop.clone(),
            HttpLimits::default(),
        ));
        let ask = |path: &'static str| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                probe(&addr, path, std::time::Duration::from_secs(5)).unwrap()
            })
        };
        assert!(ask("/healthz").await.unwrap());
        assert!(!ask("/ready").await.unwrap(), "not ready before consuming");
        stop.cancel();
    }

    #[tokio::test]
    async fn a_client_that_sends_no_request_loses_its_connection() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let limits = HttpLimits {
            max_connections: 1,
            header_timeout: Duration::from_millis(200),
            connection_timeout: Duration::from_secs(30),
        };
        tokio::spawn(serve(
            listener,
            Arc::new(Metrics::default()),
            None,
            stop.clone(),
            limits,
        ));
        // The only slot, held by a client that sends nothing: closed after the header timeout,
        // and the slot serves the next client.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut rest = Vec::new();
        silent.read_to_end(&mut rest).await.unwrap();
        let addr = addr.to_string();
        let answered = tokio::task::spawn_blocking(move || {
            probe(&addr, "/healthz", Duration::from_secs(5)).unwrap()
        });
        assert!(answered.await.unwrap());
        stop.cancel();
    }
}
