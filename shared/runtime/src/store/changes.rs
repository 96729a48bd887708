//! What changed in the store, told to whoever listens once it is durable: the sync server pushes a
//! notice to each connected peer whose scope holds a changed case, and a township's uplink sends
//! what its villages brought up at once. Only durable changes are told (`Store::sync` publishes
//! them), so a notice never points at something a crash could take back.

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::Store;

/// How many changes a slow listener may fall behind before it is told it lagged (it then treats
/// everything as changed, which is what a notice says anyway).
const BACKLOG: usize = 1024;

/// One durable change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A case, by the code of the node that took it (the case number's prefix); `from_peer` is the
    /// downstream peer whose session brought it, which needs no notice of its own change.
    Case {
        node: Arc<str>,
        from_peer: Option<Arc<str>>,
    },
    /// The catalogue or the calendar: every peer's concern.
    County,
}

impl Change {
    /// Whether a connected peer `peer` (its division code) should be told.
    pub fn concerns(&self, peer: &str) -> bool {
        match self {
            Change::County => true,
            Change::Case { node, from_peer } => {
                from_peer.as_deref() != Some(peer)
                    && tongban_shared::sync::scope::may_hold(peer, node)
            }
        }
    }
}

/// Changes written since the last flush, and the channel they go out on after it.
pub(super) struct Changes {
    unflushed: Mutex<Vec<Change>>,
    sender: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            unflushed: Mutex::new(Vec::new()),
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Store {
    /// Durable changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.sender.subscribe()
    }

    /// A case written (not yet flushed) by `from_peer`'s session, or locally.
    pub(super) fn note_case_change(&self, case_no: &str, from_peer: Option<&str>) {
        let node = case_no.split('-').next().unwrap_or(case_no);
        self.note_change(Change::Case {
            node: node.into(),
            from_peer: from_peer.map(Into::into),
        });
    }

    pub(super) fn note_change(&self, change: Change) {
        let mut unflushed = self
            .changes
            .unflushed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !unflushed.contains(&change) {
            unflushed.push(change);
        }
    }

    /// Called once a flush made everything written so far durable.
    pub(super) fn publish_changes(&self) {
        let flushed = std::mem::take(
            &mut *self
                .changes
                .unflushed
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for change in flushed {
            // No listener is no error: nothing is connected.
            let _ = self.changes.sender.send(change);
        }
    }
}
