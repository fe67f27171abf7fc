//! A small HTTP/1.1 server on a thread of its own, for what gophercap serves beside its work
//! (`/metrics` and the health probes) and for the admission webhook (over TLS). Handlers are
//! plain functions of a request: the server reads the body up to a limit, calls the handler,
//! and writes what it returns. The protocol is hyper's, TLS rustls'; this module binds, routes
//! nothing, and when dropped stops accepting and lets requests in flight finish.

mod address;
pub mod tls;

pub use address::parse_listen_address;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

pub use hyper::Method;

/// A request body larger than this is refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A client has this long to send a request's head (or finish its TLS handshake); a stalled
/// one cannot hold a connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// At shutdown, requests in flight have this long to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// What a handler sees of a request.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    pub body: Bytes,
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Called on the server's thread for every request.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{address:?} is not a listen address (HOST:PORT, [IPv6]:PORT or :PORT): {reason}")]
    Address { address: String, reason: String },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the HTTP server thread: {0}")]
    Start(#[source] io::Error),
}

/// A running server; dropping it stops accepting and waits for its thread.
pub struct Server {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Bind `address` (errors are reported here, before any work starts) and serve `handler`
    /// on a thread of its own.
    pub fn start(address: SocketAddr, handler: Handler) -> Result<Server, ServerError> {
        Self::start_with(address, handler, None)
    }

    /// The same over TLS (see [`tls::server_config`]).
    pub fn start_tls(
        address: SocketAddr,
        handler: Handler,
        tls: Arc<ServerConfig>,
    ) -> Result<Server, ServerError> {
        Self::start_with(address, handler, Some(TlsAcceptor::from(tls)))
    }

    fn start_with(
        address: SocketAddr,
        handler: Handler,
        tls: Option<TlsAcceptor>,
    ) -> Result<Server, ServerError> {
        let listener = std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ServerError::Bind { address, source })?;
        let bound = listener.local_addr().map_err(ServerError::Start)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(ServerError::Start)?;
        let (shutdown, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("http-server".into())
            .spawn(move || runtime.block_on(serve(listener, handler, tls, stopped)))
            .map_err(ServerError::Start)?;
        Ok(Server {
            address: bound,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address bound (with the port the system chose when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The thread may already be gone (its listener failed): nothing to tell it then.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the HTTP server thread panicked");
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    handler: Handler,
    tls: Option<TlsAcceptor>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the HTTP server cannot use its socket");
            return;
        }
    };
    let graceful = Arc::new(GracefulShutdown::new());
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, handler.clone(), tls.clone(), graceful.clone()));
                }
                Err(e) => {
                    // Out of descriptors or the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "the HTTP server cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    // Connections still handshaking hold a clone: the drain waits for the ones being served.
    if let Ok(graceful) = Arc::try_unwrap(graceful)
        && tokio::time::timeout(DRAIN, graceful.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("requests still in flight after the drain period were cut");
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    handler: Handler,
    tls: Option<TlsAcceptor>,
    graceful: Arc<GracefulShutdown>,
) {
    match tls {
        None => serve_connection(TokioIo::new(stream), handler, &graceful).await,
        Some(acceptor) => match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => serve_connection(TokioIo::new(stream), handler, &graceful).await,
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        },
    }
}

async fn serve_connection<IO>(io: TokioIo<IO>, handler: Handler, graceful: &GracefulShutdown)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| respond(request, handler.clone()));
    let served = graceful
        .watch(
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(io, service),
        )
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

async fn respond(
    request: hyper::Request<Incoming>,
    handler: Handler,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let answer = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => handler(&Request {
            method,
            path,
            body: body.to_bytes(),
        }),
        Err(e) if e.is::<LengthLimitError>() => {
            Response::text(413, format!("request body over {MAX_BODY_BYTES} bytes\n"))
        }
        Err(e) => Response::text(400, format!("cannot read the request body: {e}\n")),
    };
    let mut response = hyper::Response::new(Full::new(answer.body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(answer.status).unwrap_or(hyper::StatusCode::OK);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(answer.content_type),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One request over a fresh connection; the whole answer as text.
    fn exchange(address: SocketAddr, request: &str) -> String {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    fn echo_server() -> Server {
        let handler: Handler = Arc::new(|r: &Request| {
            Response::text(
                if r.path == "/missing" { 404 } else { 200 },
                format!("{} {} {}", r.method, r.path, r.body.len()),
            )
        });
        Server::start("127.0.0.1:0".parse().unwrap(), handler).unwrap()
    }

    #[test]
    fn the_handler_sees_method_path_and_body_and_sets_the_status() {
        let server = echo_server();
        let answer = exchange(
            server.address(),
            "POST /hook?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("content-type: text/plain"), "{answer}");
        assert!(answer.ends_with("POST /hook 5"), "{answer}");
        let answer = exchange(
            server.address(),
            "GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    }

    #[test]
    fn a_body_over_the_limit_is_refused_with_413() {
        let server = echo_server();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let mut stream = std::net::TcpStream::connect(server.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        // The server may answer before the whole body is sent and close: a failed write is fine.
        let _ = stream.write_all(&vec![b'x'; MAX_BODY_BYTES + 1]);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    }

    #[test]
    fn a_taken_port_is_an_error_naming_the_address() {
        let server = echo_server();
        let err = Server::start(
            server.address(),
            Arc::new(|_: &Request| Response::text(200, "")),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains(&format!("cannot listen on {}", server.address())),
            "{err}"
        );
    }

    #[test]
    fn dropping_the_server_closes_its_port() {
        let server = echo_server();
        let address = server.address();
        drop(server);
        assert!(std::net::TcpStream::connect(address).is_err());
    }
}
