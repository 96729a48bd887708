//! The UDP sockets under the nodes' sync endpoints (uplink and township relay). quinn's own socket
//! layer (quinn-udp) turns on ECN reports, packet info and don't-fragment, and refuses to make the
//! socket at all when the system's network stack lacks one of them. Wine 8, on which CI runs the
//! Windows node, has no `IP_RECVECN` and fails `getsockopt(IPV6_V6ONLY)` on an IPv4 socket (OS error
//! 10045); a village PC's third-party firewall or VPN Winsock layer can do the same. Then the node
//! falls back to [`PlainUdp`]: one datagram per call, no ECN, no offloads — all a village link needs
//! (QUIC works the same; it only learns nothing from ECN marks).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Endpoint, EndpointConfig, Runtime, ServerConfig, UdpPoller};

/// A client endpoint (the uplink) on `addr`, falling back to a plain socket.
pub fn client_endpoint(addr: SocketAddr) -> io::Result<Endpoint> {
    endpoint(None, addr)
}

/// A server endpoint (a township's relay) on `addr`, falling back to a plain socket.
pub fn server_endpoint(config: ServerConfig, addr: SocketAddr) -> io::Result<Endpoint> {
    endpoint(Some(config), addr)
}

fn endpoint(server: Option<ServerConfig>, addr: SocketAddr) -> io::Result<Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let runtime: Arc<dyn Runtime> = Arc::new(quinn::TokioRuntime);
    match runtime.wrap_udp_socket(socket.try_clone()?) {
        Ok(wrapped) => on(wrapped, server),
        Err(e) => {
            tracing::warn!(error = %e, %addr, "the system's UDP layer lacks options quinn turns on; syncing over a plain UDP socket");
            on(Arc::new(PlainUdp::new(socket)?), server)
        }
    }
}

fn on(socket: Arc<dyn AsyncUdpSocket>, server: Option<ServerConfig>) -> io::Result<Endpoint> {
    Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

/// An endpoint on a [`PlainUdp`] socket whatever the system supports: the fallback, chosen
/// directly (tests run it on Linux, where quinn's own layer always works).
pub fn plain_endpoint(server: Option<ServerConfig>, addr: SocketAddr) -> io::Result<Endpoint> {
    on(
        Arc::new(PlainUdp::new(std::net::UdpSocket::bind(addr)?)?),
        server,
    )
}

/// A UDP socket with nothing but `send_to` and `recv_from`. Needs a tokio runtime.
#[derive(Debug)]
pub struct PlainUdp {
    io: tokio::net::UdpSocket,
}

impl PlainUdp {
    pub fn new(socket: std::net::UdpSocket) -> io::Result<PlainUdp> {
        socket.set_nonblocking(true)?;
        Ok(PlainUdp {
            io: tokio::net::UdpSocket::from_std(socket)?,
        })
    }
}

impl AsyncUdpSocket for PlainUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable(self))
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // One segment per transmit (`max_transmit_segments` is 1), but split one that says
        // otherwise rather than send it glued together.
        let size = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        for datagram in transmit.contents.chunks(size) {
            self.io.try_send_to(datagram, transmit.destination)?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut read = tokio::io::ReadBuf::new(buf);
        let from = ready!(self.io.poll_recv_from(cx, &mut read))?;
        let len = read.filled().len();
        *slot = RecvMeta {
            addr: from,
            len,
            stride: len,
            ecn: None,
            dst_ip: None,
        };
        Poll::Ready(Ok(1))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

/// Ready when the socket can take the next datagram.
#[derive(Debug)]
struct Writable(Arc<PlainUdp>);

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        self.0.io.poll_send_ready(cx)
    }
}
