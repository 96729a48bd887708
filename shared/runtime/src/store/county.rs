//! Records only the county hub keeps: the enrolled nodes (with their sync statistics) and the outbox
//! of texts to applicants. Reached through [`Store::county`], so that a node's code never touches them.

use serde::{Deserialize, Serialize};
use tongban_shared::Tier;

use super::error::{corrupt, StoreError};
use super::Store;

/// One text message to an applicant, kept until a sender has passed it on (and after, as a record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: u64,
    pub case_no: String,
    pub phone: String,
    /// `correction`, `result_ready`, …
    pub kind: String,
    pub text: String,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// Which sender passed it on (`log` by default).
    pub sender: Option<String>,
}

/// A node as the hub knows it: enrolment, revocation, and how its syncing goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub parent: Option<String>,
    pub enrolled_at: String,
    pub revoked: bool,
    /// Serial of the certificate issued at enrolment (hex).
    pub serial: String,
    pub last_seen: Option<String>,
    pub sessions: u64,
    pub failed_sessions: u64,
    /// Changes and scopes refused from this node, ever.
    pub refusals: u64,
    /// The last session's first refusal (`subject: reason`), while the node keeps sending it.
    #[serde(default)]
    pub last_refusal: Option<String>,
    /// Local writes the node reported as not yet gone up, at its last session.
    #[serde(default)]
    pub pending: u64,
    /// The township the node last synced through, as that township reported.
    #[serde(default)]
    pub via: Option<String>,
    /// Sessions and refusals on the node's link to its township (as the township reported them).
    #[serde(default)]
    pub relayed_sessions: u64,
    #[serde(default)]
    pub relayed_refusals: u64,
    pub last_error: Option<String>,
    /// The node's clock minus the hub's at its last session (seconds).
    #[serde(default)]
    pub clock_skew_s: Option<i64>,
    /// The sync address its bundle names (for a township: the hub's, which its villages fall back to).
    #[serde(default)]
    pub upstream: Option<String>,
}

/// The hub's records in a store.
pub struct CountyRecords<'a> {
    store: &'a Store,
}

impl Store {
    /// The county's own records (nodes, outbox).
    pub fn county(&self) -> CountyRecords<'_> {
        CountyRecords { store: self }
    }
}

impl CountyRecords<'_> {
    /// Writes a hub-side node record (durable).
    pub fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| corrupt(&record.code, e))?;
        self.store.nodes.insert(record.code.as_bytes(), bytes)?;
        self.store.sync()
    }

    pub fn node_record(&self, code: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.store
            .nodes
            .get(code.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt(code, e)))
            .transpose()
    }

    /// Updates a node record in place (sync statistics); not flushed, they are statistics.
    pub fn update_node(
        &self,
        code: &str,
        f: impl Fn(&mut NodeRecord),
    ) -> Result<Option<NodeRecord>, StoreError> {
        let mut out = None;
        let mut undecodable = false;
        // Returning `None` from the closure would delete the key: a record that does not decode is
        // kept as it is and reported, never dropped.
        self.store.nodes.fetch_and_update(code.as_bytes(), |old| {
            let old = old?;
            let Ok(mut rec) = serde_json::from_slice::<NodeRecord>(old) else {
                undecodable = true;
                return Some(old.to_vec());
            };
            f(&mut rec);
            out = Some(rec.clone());
            Some(serde_json::to_vec(&rec).unwrap_or_else(|_| old.to_vec()))
        })?;
        if undecodable {
            return Err(corrupt(code, "node record does not decode"));
        }
        Ok(out)
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.store
            .nodes
            .iter()
            .map(|e| {
                let (k, v) = e?;
                serde_json::from_slice(&v)
                    .map_err(|e| corrupt(String::from_utf8_lossy(&k).into_owned(), e))
            })
            .collect()
    }

    /// Queues a message durably; returns its id.
    pub fn enqueue_message(
        &self,
        case_no: &str,
        phone: &str,
        kind: &str,
        text: &str,
        created_at: &str,
    ) -> Result<u64, StoreError> {
        let id = self.store.db.generate_id()?;
        let msg = OutboxMessage {
            id,
            case_no: case_no.to_string(),
            phone: phone.to_string(),
            kind: kind.to_string(),
            text: text.to_string(),
            created_at: created_at.to_string(),
            sent_at: None,
            sender: None,
        };
        let bytes = serde_json::to_vec(&msg).map_err(|e| corrupt("outbox", e))?;
        self.store.outbox.insert(id.to_be_bytes(), bytes)?;
        self.store.sync()?;
        Ok(id)
    }

    /// Messages, oldest first; only unsent ones with `unsent_only`.
    pub fn outbox(&self, unsent_only: bool) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut out = Vec::new();
        for entry in self.store.outbox.iter() {
            let (_, v) = entry?;
            let msg: OutboxMessage =
                serde_json::from_slice(&v).map_err(|e| corrupt("outbox", e))?;
            if !unsent_only || msg.sent_at.is_none() {
                out.push(msg);
            }
        }
        Ok(out)
    }

    /// Records that a sender passed message `id` on.
    pub fn mark_sent(&self, id: u64, sender: &str, at: &str) -> Result<(), StoreError> {
        self.store
            .outbox
            .fetch_and_update(id.to_be_bytes(), |old| {
                let old = old?;
                // Kept as it is when it does not decode (`None` would delete it).
                let Ok(mut msg) = serde_json::from_slice::<OutboxMessage>(old) else {
                    return Some(old.to_vec());
                };
                msg.sent_at = Some(at.to_string());
                msg.sender = Some(sender.to_string());
                Some(serde_json::to_vec(&msg).unwrap_or_else(|_| old.to_vec()))
            })?;
        self.store.sync()
    }
}
