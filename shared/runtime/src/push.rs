//! What the server sends a connected peer unasked. Push: on each admitted connection the server
//! opens one unidirectional stream and writes a byte on it whenever a durable change concerns the
//! peer (a county action on one of its cases, a case another path brought, a new catalogue or
//! calendar). The peer answers by starting a session; the byte carries nothing else, so a lost or
//! coalesced notice costs nothing but latency until the next one or the peer's safety-net poll.
//! Liveness: the peer's probe datagrams (see `link`) are echoed, so a peer can tell within seconds
//! that its upstream has gone without a keep-alive every second on an idle link.

use std::time::Duration;

use quinn::Connection;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::store::changes::Change;

/// An honest peer probes at most every 1.5 s; more often than this is not answered, so a peer that
/// floods datagrams gets nothing back for them.
const ECHO_AT_MOST_EVERY: Duration = Duration::from_millis(500);
/// A probe is a byte or two; a longer datagram is not echoed (no amplification).
const PROBE_MAX_BYTES: usize = 8;

/// Writes notices for `peer` (and echoes its probes) until the connection ends. Changes that arrive
/// while a notice is being written are folded into the next one; a peer that does not read only
/// fills its own stream window (one byte per burst of changes), which never blocks anything but
/// this task.
pub async fn notify_peer(conn: Connection, mut changes: broadcast::Receiver<Change>, peer: String) {
    let mut stream = None;
    // Apart from the notices: a peer that does not read them must still be answered.
    tokio::spawn(echo_probes(conn.clone()));
    loop {
        let concerned = tokio::select! {
            _ = conn.closed() => return,
            change = changes.recv() => match change {
                Ok(change) => change.concerns(&peer),
                // Fell behind: whatever was missed may concern the peer.
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
        };
        if !concerned {
            continue;
        }
        // Fold what is already queued into this notice.
        while changes.try_recv().is_ok() {}
        let send = match &mut stream {
            Some(send) => send,
            None => match conn.open_uni().await {
                Ok(send) => stream.insert(send),
                Err(_) => return,
            },
        };
        if send.write_all(&[1]).await.is_err() {
            return;
        }
    }
}

/// Echoes the peer's probes until the connection ends, at most one per `ECHO_AT_MOST_EVERY`.
async fn echo_probes(conn: Connection) {
    let mut last_echo: Option<tokio::time::Instant> = None;
    while let Ok(probe) = conn.read_datagram().await {
        let now = tokio::time::Instant::now();
        let due = last_echo.is_none_or(|at| now - at >= ECHO_AT_MOST_EVERY);
        if due && probe.len() <= PROBE_MAX_BYTES {
            last_echo = Some(now);
            // Unreliable by design: a lost echo is a lost probe, which the peer repeats.
            let _ = conn.send_datagram(probe);
        }
    }
}
