//! How a tier's router meets the network: HTTPS (rustls, TLS 1.2+) for the hall's browsers, plain
//! HTTP on loopback for the PC itself, and on any other address only a redirect to HTTPS — passwords,
//! session cookies and villagers' data never cross the LAN in clear.
//!
//! Every connection tells handlers who it came from and whether it was encrypted ([`Peer`]): the
//! login guard locks out a source address, and a session cookie is marked `Secure` under HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Whether it is HTTPS.
    pub tls: bool,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            tls: false,
        }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            tls: true,
        }
    }
}

/// A browser that does not finish its handshake in this time is dropped (it holds a task and a slot).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more wait in the kernel's accept queue.
const MAX_HANDSHAKES: usize = 64;

/// Accepts TCP connections and completes their TLS handshakes off the accept path, so one slow or
/// silent client never holds up the next; axum sees only finished TLS streams.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (send, ready) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "cannot accept an HTTPS connection");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let send = send.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = send.send((tls, addr)).await;
                        }
                        // Most often a browser that does not trust the county CA yet (see /ca).
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor: task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor task ended (only when its semaphore is gone): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `router` over plain HTTP until `shutdown` completes.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves `router` over HTTPS until `shutdown` completes; every answer carries HSTS, so a browser
/// that once reached the hall's server encrypted never falls back to clear text.
pub async fn serve_https(
    listener: TlsListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::map_response(strict_transport));
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn strict_transport(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// The whole app of a plain-HTTP address beyond loopback: `public` (the CA download, which a browser
/// needs before it can trust HTTPS), and for every other request a redirect to the same path over
/// HTTPS on `https_port`.
/// Serves the web app on `listener` (plain HTTP) and, when given, on `tls` (HTTPS) until `shutdown`
/// completes; both tiers serve this way. Beyond loopback, with HTTPS, plain HTTP gets only `public`
/// (the CA page) and a redirect; everything else is the whole `router`.
pub async fn serve_web(
    listener: TcpListener,
    tls: Option<(TlsListener, u16)>,
    router: Router,
    public: Router,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let plain_addr = listener.local_addr()?;
    let plain_router = match &tls {
        Some((_, https_port)) if !is_loopback(&plain_addr) => {
            redirect_to_https(*https_port, public)
        }
        _ => router.clone(),
    };
    let plain = serve_http(listener, plain_router, shutdown.clone().cancelled_owned());
    match tls {
        Some((tls, _)) => {
            let encrypted = serve_https(tls, router, shutdown.cancelled_owned());
            tokio::try_join!(plain, encrypted).map(|_| ())
        }
        None => plain.await,
    }
}

pub fn redirect_to_https(https_port: u16, public: Router) -> Router {
    public.fallback(move |headers: axum::http::HeaderMap, uri: Uri| async move {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(host_without_port);
        let Some(host) = host else {
            return (StatusCode::BAD_REQUEST, "请使用 https:// 访问。").into_response();
        };
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let target = if https_port == 443 {
            format!("https://{host}{path}")
        } else {
            format!("https://{host}:{https_port}{path}")
        };
        match HeaderValue::from_str(&target) {
            Ok(location) => (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
                "请使用 https:// 访问。",
            )
                .into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, "请使用 https:// 访问。").into_response(),
        }
    })
}

/// The host part of a `Host` header (`10.1.2.3:8080`, `[::1]:8080`, `hub.local`), refusing anything
/// that is not a plain name or address (a crafted header must not make a redirect elsewhere odd).
fn host_without_port(raw: &str) -> Option<&str> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        &raw[..rest.find(']')? + 2]
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    plain.then_some(host)
}

/// Whether an address is this PC only: plain HTTP is served there in full.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_keeps_only_the_host_of_the_host_header() {
        assert_eq!(host_without_port("10.1.2.3:8080"), Some("10.1.2.3"));
        assert_eq!(host_without_port("hub.local"), Some("hub.local"));
        assert_eq!(host_without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_without_port("evil.example/x:1"), None);
        assert_eq!(host_without_port("a b:1"), None);
    }
}
