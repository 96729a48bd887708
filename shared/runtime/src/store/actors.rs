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

    /// Every binding, grouped by node: what the county tells a township about its villages.
    pub fn actors_by_node(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<[u8; 16]>>, StoreError> {
        let mut out: std::collections::BTreeMap<String, Vec<[u8; 16]>> = Default::default();
        for entry in self.actors.iter() {
            let (actor, node) = entry?;
            if let Ok(actor) = <[u8; 16]>::try_from(actor.as_ref()) {
                out.entry(String::from_utf8_lossy(&node).into_owned())
                    .or_default()
                    .push(actor);
            }
        }
        Ok(out)
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
    /// Each village's actor ids (the one its certificate serial implies, and those it declared at
    /// enrolment) are bound to it here as the county bound them, so no other peer can claim one.
    pub fn set_downstream(&self, nodes: &[NodeCert]) -> Result<(), StoreError> {
        let json = serde_json::to_vec(nodes).map_err(|e| corrupt("downstream_nodes", e))?;
        if self.meta.get(K_DOWNSTREAM)?.as_deref() == Some(json.as_slice()) {
            return Ok(());
        }
        for node in nodes {
            let declared = node
                .actors
                .iter()
                .filter_map(|a| crate::bundle::parse_actor(a));
            for actor in std::iter::once(crate::tls::actor_for_serial(&node.serial)).chain(declared)
            {
                if self.actor_node(&actor)?.is_none() {
                    self.bind_actor(&actor, &node.code)?;
                }
            }
        }
        self.meta.insert(K_DOWNSTREAM, json)?;
        self.sync()
    }
}
