//! Server side of push: on each admitted connection the server opens one unidirectional stream and
//! writes a byte on it whenever a durable change concerns the peer (a county action on one of its
//! cases, a case another path brought, a new catalogue or calendar). The peer answers by starting a
//! session; the byte carries nothing else, so a lost or coalesced notice costs nothing but latency
//! until the next one or the peer's safety-net poll.

use quinn::Connection;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::store::changes::Change;

/// Writes notices for `peer` until the connection ends. Changes that arrive while a notice is being
/// written are folded into the next one; a peer that does not read only fills its own stream window
/// (one byte per burst of changes), which never blocks anything but this task.
pub async fn notify_peer(conn: Connection, mut changes: broadcast::Receiver<Change>, peer: String) {
    let mut stream = None;
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
