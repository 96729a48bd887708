//! Automerge actor ids bound to the node that owns them (the `actors` tree): the hub checks every
//! incoming change's actor against the sending node.

use super::error::StoreError;
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
