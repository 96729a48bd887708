//! An in-memory [`Replica`] with an explicit durability line: documents stored but not committed are
//! lost by [`MemReplica::crash`]. The deterministic simulator and the protocol tests run on it.

use std::collections::BTreeMap;

use automerge::{ActorId, AutoCommit};

use super::scope;
use super::session::Replica;
use super::summary::{heads_digest, Digest, Fp, MemSummary, Prefix};

#[derive(Debug, Clone, Default)]
pub struct MemReplica {
    /// What survives a crash: case number → saved document.
    durable: BTreeMap<String, Vec<u8>>,
    /// Stored since the last commit.
    pending: BTreeMap<String, Vec<u8>>,
    summary: MemSummary,
    /// Actor (hex) → code of the node it is bound to. Bindings are durable at once.
    actors: BTreeMap<String, String>,
    /// (version, JSON) of the catalogue held.
    catalog: (u32, String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemError(String);

impl MemReplica {
    /// Loses everything not committed, as a power cut would.
    pub fn crash(&mut self) {
        self.pending.clear();
        self.summary = MemSummary::default();
        let durable = std::mem::take(&mut self.durable);
        for (case_no, bytes) in &durable {
            if let (Some(scope), Ok(mut doc)) = (scope::scope_of(case_no), AutoCommit::load(bytes))
            {
                self.summary
                    .set(scope, case_no, heads_digest(&doc.get_heads()));
            }
        }
        self.durable = durable;
    }

    /// Every case number held.
    pub fn case_numbers(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .durable
            .keys()
            .chain(self.pending.keys())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Heads digest of a case, if held.
    pub fn digest(&self, case_no: &str) -> Option<Digest> {
        self.summary.digest(case_no)
    }

    /// Binds an actor to a node (enrolment, or the hub's own actor).
    pub fn bind_actor(&mut self, actor: &ActorId, node: &str) {
        self.actors.insert(actor.to_hex_string(), node.to_string());
    }

    /// The node an actor is bound to, if any.
    pub fn actor_node(&self, actor: &ActorId) -> Option<&str> {
        self.actors.get(&actor.to_hex_string()).map(String::as_str)
    }

    /// Publishes a catalogue version here (the hub's side of a catalogue update).
    pub fn publish_catalog(&mut self, version: u32, json: &str) {
        self.catalog = (version, json.to_string());
    }

    /// Stores and commits in one step: a local write acknowledged to a person.
    pub fn write(&mut self, case_no: &str, doc: &mut AutoCommit) -> Result<(), MemError> {
        self.store(case_no, doc)?;
        self.commit()
    }
}

impl Replica for MemReplica {
    type Error = MemError;

    fn scope_roots(&self, within: &str) -> Result<Vec<(String, Fp)>, MemError> {
        Ok(self.summary.scopes(within))
    }

    fn node(&self, scope: &str, prefix: Prefix) -> Result<Fp, MemError> {
        Ok(self.summary.node(scope, prefix))
    }

    fn children(&self, scope: &str, prefix: Prefix) -> Result<Vec<Fp>, MemError> {
        Ok(self.summary.children(scope, prefix))
    }

    fn items(&self, scope: &str, prefix: Prefix) -> Result<Vec<(String, Digest)>, MemError> {
        Ok(self.summary.items(scope, prefix))
    }

    fn load(&self, case_no: &str) -> Result<Option<AutoCommit>, MemError> {
        let Some(bytes) = self
            .pending
            .get(case_no)
            .or_else(|| self.durable.get(case_no))
        else {
            return Ok(None);
        };
        AutoCommit::load(bytes)
            .map(Some)
            .map_err(|e| MemError(format!("{case_no}: {e}")))
    }

    fn store(&mut self, case_no: &str, doc: &mut AutoCommit) -> Result<(), MemError> {
        let scope = scope::scope_of(case_no)
            .ok_or_else(|| MemError(format!("{case_no} is not a case number")))?;
        let mut merged = match self.load(case_no)? {
            Some(mut current) => {
                current
                    .merge(doc)
                    .map_err(|e| MemError(format!("{case_no}: {e}")))?;
                current
            }
            None => doc.clone(),
        };
        self.summary
            .set(scope, case_no, heads_digest(&merged.get_heads()));
        self.pending.insert(case_no.to_string(), merged.save());
        Ok(())
    }

    fn commit(&mut self) -> Result<(), MemError> {
        let pending = std::mem::take(&mut self.pending);
        self.durable.extend(pending);
        Ok(())
    }

    fn catalog_version(&self) -> Result<u32, MemError> {
        Ok(self.catalog.0)
    }

    fn catalog_json(&self) -> Result<String, MemError> {
        Ok(self.catalog.1.clone())
    }

    fn set_catalog(&mut self, json: &str) -> Result<(), MemError> {
        let version = crate::catalog::Catalog::from_json(json)
            .map(|c| c.version)
            .or_else(|_| {
                // The simulator's catalogues are bare version numbers.
                json.trim()
                    .parse::<u32>()
                    .map_err(|e| MemError(e.to_string()))
            })?;
        if version <= self.catalog.0 {
            return Err(MemError(format!(
                "catalogue version {version} is not newer than {}",
                self.catalog.0
            )));
        }
        self.catalog = (version, json.to_string());
        Ok(())
    }

    fn actor_allowed(&mut self, peer: &str, actor: &ActorId) -> Result<bool, MemError> {
        let hex = actor.to_hex_string();
        match self.actors.get(&hex) {
            Some(node) => Ok(scope::may_hold(peer, node)),
            None => {
                self.actors.insert(hex, peer.to_string());
                Ok(true)
            }
        }
    }
}

/// What [`converse`] measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    pub client: super::SessionStats,
    pub bytes_up: usize,
    pub bytes_down: usize,
}

/// Runs one whole session between two replicas in memory, through the real frame encoding (so byte
/// counts are what a network would carry as payload). The driver the tests and benches use.
pub fn converse<C: Replica, S: Replica>(
    client: &mut C,
    client_scopes: Vec<String>,
    server: &mut S,
    peer_code: &str,
) -> Result<Conversation, super::SessionError> {
    use super::frame::{encode, FrameDecoder};
    let mut c = super::ClientSession::new(client_scopes).with_pending(0);
    let mut s = super::ServerSession::new(peer_code);
    let mut out = Conversation::default();
    let mut request = Some(c.start(client)?);
    let frame_err = |e: super::FrameError| super::SessionError::Protocol(e.to_string());
    while let Some(req) = request {
        let up = encode(&req).map_err(frame_err)?;
        out.bytes_up += up.len();
        let mut dec = FrameDecoder::default();
        dec.push(&up);
        let req = dec
            .next_msg()
            .map_err(frame_err)?
            .ok_or_else(|| super::SessionError::Protocol("incomplete frame".into()))?;
        let resp = match s.handle(server, req) {
            Ok(m) => m,
            Err(e) => super::Msg::Error {
                reason: e.to_string(),
            },
        };
        let down = encode(&resp).map_err(frame_err)?;
        out.bytes_down += down.len();
        dec.push(&down);
        let resp = dec
            .next_msg()
            .map_err(frame_err)?
            .ok_or_else(|| super::SessionError::Protocol("incomplete frame".into()))?;
        request = c.handle(client, resp)?;
    }
    if let Some(version) = c.outgoing_version() {
        client
            .clear_outgoing(version)
            .map_err(|e| super::SessionError::Storage(e.to_string()))?;
    }
    out.client = c.stats().clone();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    const HUB: &str = "420222";
    const V1: &str = "420222100201";
    const V2: &str = "420222100202";

    fn new_case(r: &mut MemReplica, node: &str, seq: u32, actor: u8) -> String {
        let no = format!("{node}-20261127-{seq:04}");
        let mut doc = AutoCommit::new().with_actor(ActorId::from([actor; 16].as_slice()));
        doc.put(automerge::ROOT, "case_no", no.as_str()).unwrap();
        doc.put(automerge::ROOT, "note", "x".repeat(40)).unwrap();
        doc.commit();
        r.write(&no, &mut doc).unwrap();
        no
    }

    fn edit(r: &mut MemReplica, case_no: &str, actor: u8, value: &str) {
        let mut doc = r.load(case_no).unwrap().unwrap();
        doc.set_actor(ActorId::from([actor; 16].as_slice()));
        doc.put(automerge::ROOT, "state", value).unwrap();
        doc.commit();
        r.write(case_no, &mut doc).unwrap();
    }

    fn hub() -> MemReplica {
        let mut h = MemReplica::default();
        h.bind_actor(&ActorId::from([200u8; 16].as_slice()), HUB);
        h
    }

    #[test]
    fn cases_flow_up_and_hub_changes_flow_down() {
        let mut hub = hub();
        let mut village = MemReplica::default();
        let mut nos = Vec::new();
        for i in 1..=40 {
            nos.push(new_case(&mut village, V1, i, 1));
        }
        let first = converse(&mut village, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(first.client.cases_sent, 40);
        assert_eq!(hub.case_numbers(), nos);
        assert_eq!(
            hub.node(V1, Prefix::ROOT).unwrap(),
            village.node(V1, Prefix::ROOT).unwrap()
        );

        // Nothing changed: one round trip, a few dozen bytes.
        let again = converse(&mut village, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(again.client.round_trips, 1);
        assert!(again.bytes_up + again.bytes_down < 200, "{again:?}");

        // The hub acts on one case; it comes down.
        edit(&mut hub, &nos[7], 200, "RECEIVED");
        let down = converse(&mut village, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(down.client.cases_received, 1);
        assert_eq!(village.digest(&nos[7]), hub.digest(&nos[7]));
    }

    #[test]
    fn a_newer_catalogue_flows_down_once() {
        let mut hub = hub();
        let mut village = MemReplica::default();
        let builtin = crate::catalog::Catalog::builtin().unwrap().version;
        let next = builtin + 1;
        let json = crate::catalog::BUILTIN_CATALOG_JSON.replacen(
            &format!("\"version\": {builtin},"),
            &format!("\"version\": {next},"),
            1,
        );
        hub.publish_catalog(next, &json);
        let first = converse(&mut village, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(first.client.catalog_received, Some(next));
        assert_eq!(village.catalog_version().unwrap(), next);
        let again = converse(&mut village, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(again.client.catalog_received, None);
        assert!(again.bytes_down < 50);
    }

    #[test]
    fn concurrent_edits_on_both_sides_merge() {
        let mut hub = hub();
        let mut village = MemReplica::default();
        let no = new_case(&mut village, V1, 1, 1);
        converse(&mut village, vec![V1.into()], &mut hub, V1).unwrap();
        edit(&mut hub, &no, 200, "RECEIVED");
        edit(&mut village, &no, 1, "DRAFT-EDIT");
        converse(&mut village, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(village.digest(&no), hub.digest(&no));
        assert_eq!(village.load(&no).unwrap().unwrap().get_heads().len(), 2);
    }

    #[test]
    fn a_village_never_receives_another_villages_cases_nor_writes_them() {
        let mut hub = hub();
        let mut v1 = MemReplica::default();
        let mut v2 = MemReplica::default();
        new_case(&mut v1, V1, 1, 1);
        new_case(&mut v2, V2, 1, 2);
        converse(&mut v1, vec![V1.into()], &mut hub, V1).unwrap();
        converse(&mut v2, vec![V2.into()], &mut hub, V2).unwrap();
        assert_eq!(hub.case_numbers().len(), 2);
        assert_eq!(v1.case_numbers().len(), 1);

        // v2 claims v1's scope and writes a case there: refused, the hub keeps one v1 case.
        let forged = new_case(&mut v2, V1, 99, 2);
        let c = converse(&mut v2, vec![V2.into(), V1.into()], &mut hub, V2).unwrap();
        assert!(c.client.refused.iter().any(|r| r.subject == V1), "{c:?}");
        assert!(!hub.case_numbers().contains(&forged));
    }

    #[test]
    fn changes_by_an_actor_bound_to_another_node_are_refused() {
        let mut hub = hub();
        let mut v1 = MemReplica::default();
        let no = new_case(&mut v1, V1, 1, 1);
        converse(&mut v1, vec![V1.into()], &mut hub, V1).unwrap();
        // v1 writes with the hub's actor id, pretending the county decided.
        edit(&mut v1, &no, 200, "ACCEPTED");
        let before = hub.digest(&no);
        let c = converse(&mut v1, vec![V1.into()], &mut hub, V1).unwrap();
        assert!(c.client.refused.iter().any(|r| r.subject == no), "{c:?}");
        assert_eq!(hub.digest(&no), before);
        // An honest case in the same session still lands.
        let honest = new_case(&mut v1, V1, 2, 1);
        converse(&mut v1, vec![V1.into()], &mut hub, V1).unwrap();
        assert!(hub.case_numbers().contains(&honest));
    }

    #[test]
    fn a_node_that_lost_everything_gets_its_scope_back() {
        let mut hub = hub();
        let mut v1 = MemReplica::default();
        for i in 1..=300 {
            new_case(&mut v1, V1, i, 1);
        }
        converse(&mut v1, vec![V1.into()], &mut hub, V1).unwrap();
        let mut fresh = MemReplica::default();
        let c = converse(&mut fresh, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(c.client.cases_received, 300);
        assert_eq!(fresh.case_numbers(), v1.case_numbers());
    }

    #[test]
    fn one_changed_case_among_many_costs_little() {
        let mut hub = hub();
        let mut v1 = MemReplica::default();
        for i in 1..=2000 {
            new_case(&mut v1, V1, i, 1);
        }
        converse(&mut v1, vec![V1.into()], &mut hub, V1).unwrap();
        let no = new_case(&mut v1, V1, 2001, 1);
        let c = converse(&mut v1, vec![V1.into()], &mut hub, V1).unwrap();
        assert_eq!(c.client.cases_sent, 1);
        assert!(hub.case_numbers().contains(&no));
        assert!(c.bytes_up + c.bytes_down < 8 * 1024, "{c:?}");
        eprintln!("one new case among 2000: {c:?}");
    }
}
