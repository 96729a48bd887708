//! QUIC transport settings of sync connections, both ends: streams, keep-alive, idle timeout,
//! windows. (The TLS side of the same connections is `tls.rs`.)

/// Which end of a sync connection a transport configuration is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Between keep-alives of an open connection: under the 25–30 s after which many NATs forget a UDP
/// mapping, and rare enough that an idle village's link costs under half a megabyte a day (one PING
/// and its ACK, about 95 bytes on the wire: `tongban-bench link`). Only the node sends them.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(20);
/// A connection that hears nothing for this long is gone: two keep-alives and their retries missed.
const IDLE_TIMEOUT_MS: u32 = 50_000;

/// Transport limits: a few streams per connection; the client keeps its connection alive and takes
/// the server's one notice stream (see `push`), the server opens it.
pub(crate) fn transport(side: Side) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(2u32.into());
    t.max_concurrent_uni_streams(u32::from(side == Side::Client).into());
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        IDLE_TIMEOUT_MS,
    ))));
    if side == Side::Client {
        t.keep_alive_interval(Some(KEEP_ALIVE));
    }
    // No path-MTU probing: its probes (up to 1452 bytes each, a binary search at every connection
    // and again every 10 minutes) were most of a connection's 18 KB on the wire, and sync frames go
    // as well in 1200-byte packets over a village's 4G link.
    t.mtu_discovery_config(None);
    // What a peer may send before it is read: bounds a connection's buffers (quinn's connection-wide
    // default is unlimited). A sync frame is at most 4 MiB and is read as it arrives.
    t.stream_receive_window(quinn::VarInt::from_u32(1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(2 * 1024 * 1024));
    // Datagrams carry only liveness probes and their echoes, a byte each (see `link`, `push`):
    // a few kilobytes of buffer, not quinn's megabyte, whatever a peer floods.
    t.datagram_receive_buffer_size(Some(4096));
    t.datagram_send_buffer_size(4096);
    t
}
