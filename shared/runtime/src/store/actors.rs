//! Automerge actor ids bound to the node that owns them (the `actors` tree): the hub checks every
//! incoming change's actor against the sending node.

use tongban_shared::sync::frame::NodeCert;

use super::error::{corrupt, StoreError};
use super::Store;

impl Store {
    /// Binds an automerge actor id to a node (enrolment, or first use).
    pub fn bind_actor(&self, actor: &[u8], node_code: &str) -> Result<(), StoreError> {
        self.actors.insert(actor, node_code.as_bytes())?;
        Ok(())
    }

    /// The node an actor id is bound to, if any.
    pub fn actor_node(&self, actor: &[u8]) -> Result<Option<String>, StoreError> {
        Ok(self
            .actors
            .get(actor)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

/// The county's record of this node's downstream (a township's villages), JSON in `meta`.
const K_DOWNSTREAM: &[u8] = b"downstream_nodes";

impl Store {
    /// A township: the villages the county enrolled under it, with their certificate serials and
    /// revocation, as its last session with the county brought them (empty before the first).
    pub fn downstream(&self) -> Result<Vec<NodeCert>, StoreError> {
        match self.meta.get(K_DOWNSTREAM)? {
            None => Ok(Vec::new()),
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| corrupt("downstream_nodes", e)),
        }
    }

    /// Keeps the county's list (durably, and only when it changed: a session brings it every time).
    /// Each village's actor id, which derives from its certificate serial, is bound to it here as
    /// the county bound it at enrolment, so no other peer can claim it first.
    pub fn set_downstream(&self, nodes: &[NodeCert]) -> Result<(), StoreError> {
        let json = serde_json::to_vec(nodes).map_err(|e| corrupt("downstream_nodes", e))?;
        if self.meta.get(K_DOWNSTREAM)?.as_deref() == Some(json.as_slice()) {
            return Ok(());
        }
        for node in nodes {
            let actor = crate::tls::actor_for_serial(&node.serial);
            if self.actor_node(&actor)?.is_none() {
                self.bind_actor(&actor, &node.code)?;
            }
        }
        self.meta.insert(K_DOWNSTREAM, json)?;
        self.sync()
    }
}
