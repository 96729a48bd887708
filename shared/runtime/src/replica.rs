//! The sync protocol's view of the sled store: summaries, documents, merge-on-store and actor bindings.

use std::cell::RefCell;

use automerge::{ActorId, AutoCommit, ChangeHash};
use tongban_shared::case::{self, CaseSummary};
use tongban_shared::event::Author;
use tongban_shared::ingress::{self, Judged, Upstream};
use tongban_shared::sync::frame::NodeCert;
use tongban_shared::sync::scope;
use tongban_shared::sync::summary::{Digest, Fp, Prefix, FANOUT};
use tongban_shared::sync::Replica;

use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("case {case_no}: {reason}")]
    Document { case_no: String, reason: String },
}

/// A [`Replica`] over a node's or the hub's store.
pub struct SledReplica<'a> {
    store: &'a Store,
    /// The client side of a session: what it stores came from the upstream and is not outgoing.
    client: bool,
    /// The summary of the document last judged by `check_change`, by its heads: the server judges a
    /// document and then stores it, and reading a case out of a document twice is a large part of
    /// what storing costs.
    judged: RefCell<Option<(Vec<ChangeHash>, CaseSummary)>>,
    /// Server side: the verdicts of `check_change` by case, written into the stored document when the
    /// case is stored (refusals, imported history, projection).
    verdicts: RefCell<std::collections::BTreeMap<String, Judged>>,
    /// Catalogues by version, parsed once per session: parsing one for every new case was a third
    /// of the hub's time in a fan-in.
    catalogs: RefCell<std::collections::BTreeMap<u32, Option<tongban_shared::catalog::Catalog>>>,
    /// Server side: the actor the peer's certificate implies (`tls::actor_for_serial`), which is the
    /// peer's own even before this store learnt of it (a township that has not heard from the
    /// county since the village was enrolled).
    peer_actor: Option<[u8; 16]>,
    /// Server side: the peer's code, so that its own changes are not pushed back to it.
    peer: Option<String>,
}

impl<'a> SledReplica<'a> {
    pub fn new(store: &'a Store) -> SledReplica<'a> {
        SledReplica {
            store,
            client: false,
            judged: RefCell::new(None),
            verdicts: RefCell::new(Default::default()),
            catalogs: RefCell::new(Default::default()),
            peer_actor: None,
            peer: None,
        }
    }

    /// The replica of a session's server side with the peer `code` presenting the certificate
    /// `serial`.
    pub fn serving(store: &'a Store, code: &str, serial: &str) -> SledReplica<'a> {
        SledReplica {
            peer_actor: Some(crate::tls::actor_for_serial(serial)),
            peer: Some(code.to_string()),
            ..SledReplica::new(store)
        }
    }

    /// The replica of a session's client side (a node syncing with its upstream).
    pub fn client(store: &'a Store) -> SledReplica<'a> {
        SledReplica {
            client: true,
            ..SledReplica::new(store)
        }
    }

    /// The case summary of `doc`, reusing the one `check_change` made of the same version.
    fn summary_of(&self, case_no: &str, doc: &mut AutoCommit) -> Result<CaseSummary, ReplicaError> {
        let heads = doc.get_heads();
        if let Some((judged_heads, summary)) = self.judged.borrow_mut().take() {
            if judged_heads == heads && summary.case_no == case_no {
                return Ok(summary);
            }
        }
        let case = case::read_case(doc).map_err(|e| ReplicaError::Document {
            case_no: case_no.to_string(),
            reason: e.to_string(),
        })?;
        Ok(case.summary())
    }
}

impl SledReplica<'_> {
    /// Who writes this upstream's refusals: the hub, or the township relaying for its villages.
    fn upstream_author(&self) -> Result<Author, ReplicaError> {
        let identity = self.store.identity()?;
        Ok(Author {
            account: "system".into(),
            name: identity.name.clone(),
            role: if identity.tier == tongban_shared::Tier::County {
                "admin"
            } else {
                "agent"
            }
            .into(),
            tier: identity.tier,
            node: identity.code,
        })
    }

    /// Merges `doc` into the stored case under the store's write lock. `saved` (the encoding `doc`
    /// was decoded from) is stored as it is when there is no stored version to merge with: encoding a
    /// document again costs more than everything else in storing it.
    fn merge_in(
        &mut self,
        case_no: &str,
        doc: &mut AutoCommit,
        saved: Option<&[u8]>,
    ) -> Result<(), ReplicaError> {
        let doc_err = |reason: String| ReplicaError::Document {
            case_no: case_no.to_string(),
            reason,
        };
        // A document new here is read and encoded outside the store's write lock, so that two
        // sessions can do that work at once; only if the case turns out to exist is it merged under
        // the lock.
        let prepared = match saved {
            Some(saved) if !self.store.has_case(case_no)? => {
                let summary = self.summary_of(case_no, doc)?;
                if summary.case_no != case_no {
                    return Err(doc_err(format!("document names case {}", summary.case_no)));
                }
                Some((saved.to_vec(), summary))
            }
            _ => None,
        };
        let verdict = self.verdicts.borrow_mut().remove(case_no);
        let settle = |merged: &mut AutoCommit| -> Result<bool, ReplicaError> {
            let Some(verdict) = &verdict else {
                return Ok(false);
            };
            let author = self.upstream_author()?;
            merged.set_actor(ActorId::from(self.store.actor()?.as_slice()));
            let wrote = ingress::settle(merged, verdict, &author, crate::clock::beijing_now())
                .map_err(doc_err)?;
            if wrote {
                merged.commit();
            }
            Ok(wrote)
        };
        let merge = |current: Option<Vec<u8>>| {
            let mut merged = match current {
                Some(bytes) => {
                    let mut cur = AutoCommit::load(&bytes).map_err(|e| doc_err(e.to_string()))?;
                    cur.merge(doc).map_err(|e| doc_err(e.to_string()))?;
                    cur
                }
                None => {
                    if let Some(prepared) = prepared {
                        let mut doc = doc.clone();
                        if settle(&mut doc)? {
                            let case = case::read_case(&doc).map_err(|e| doc_err(e.to_string()))?;
                            return Ok((doc.save(), case.summary()));
                        }
                        return Ok(prepared);
                    }
                    // Only well-formed cases are stored: the index and the lists depend on it.
                    let mut doc = doc.clone();
                    settle(&mut doc)?;
                    let case = case::read_case(&doc).map_err(|e| doc_err(e.to_string()))?;
                    if case.case_no != case_no {
                        return Err(doc_err(format!("document names case {}", case.case_no)));
                    }
                    return Ok((doc.save(), case.summary()));
                }
            };
            settle(&mut merged)?;
            let case = case::read_case(&merged).map_err(|e| doc_err(e.to_string()))?;
            if case.case_no != case_no {
                return Err(doc_err(format!("document names case {}", case.case_no)));
            }
            Ok((merged.save(), case.summary()))
        };
        match (&self.client, &self.peer) {
            (true, _) => self.store.merge_case_from_upstream(case_no, merge)?,
            (false, Some(peer)) => self.store.merge_case_from_peer(case_no, peer, merge)?,
            (false, None) => self.store.merge_case(case_no, merge)?,
        }
    }
}

impl Replica for SledReplica<'_> {
    type Error = ReplicaError;

    fn scope_roots(&self, within: &str) -> Result<Vec<(String, Fp)>, ReplicaError> {
        Ok(self.store.scope_roots(within)?)
    }

    fn node(&self, scope: &str, prefix: Prefix) -> Result<Fp, ReplicaError> {
        Ok(self.store.sync_node(scope, prefix)?)
    }

    fn children(&self, scope: &str, prefix: Prefix) -> Result<Vec<Fp>, ReplicaError> {
        (0..FANOUT as u8)
            .map(|n| Ok(self.store.sync_node(scope, prefix.child(n))?))
            .collect()
    }

    fn items(&self, scope: &str, prefix: Prefix) -> Result<Vec<(String, Digest)>, ReplicaError> {
        Ok(self.store.sync_items(scope, prefix)?)
    }

    fn load(&self, case_no: &str) -> Result<Option<AutoCommit>, ReplicaError> {
        let Some(bytes) = self.store.document(case_no)? else {
            return Ok(None);
        };
        AutoCommit::load(&bytes)
            .map(Some)
            .map_err(|e| ReplicaError::Document {
                case_no: case_no.to_string(),
                reason: e.to_string(),
            })
    }

    fn store(&mut self, case_no: &str, doc: &mut AutoCommit) -> Result<(), ReplicaError> {
        self.merge_in(case_no, doc, None)
    }

    fn outgoing(&self) -> Result<Vec<tongban_shared::sync::Outgoing>, ReplicaError> {
        Ok(self.store.outgoing()?)
    }

    fn clear_outgoing(&mut self, version: u64) -> Result<(), ReplicaError> {
        Ok(self.store.clear_outgoing(version)?)
    }

    fn load_saved(&self, case_no: &str) -> Result<Option<Vec<u8>>, ReplicaError> {
        Ok(self.store.document(case_no)?)
    }

    fn store_whole(
        &mut self,
        case_no: &str,
        doc: &mut AutoCommit,
        saved: &[u8],
    ) -> Result<(), ReplicaError> {
        self.merge_in(case_no, doc, Some(saved))
    }

    fn commit(&mut self) -> Result<(), ReplicaError> {
        Ok(self.store.flush()?)
    }

    fn refusal_of(e: &ReplicaError) -> Option<String> {
        match e {
            ReplicaError::Store(StoreError::Refused(refusal)) => Some(refusal.to_string()),
            ReplicaError::Document { reason, .. } => Some(reason.clone()),
            ReplicaError::Store(_) => None,
        }
    }

    fn check_change(
        &self,
        peer: &str,
        old: Option<&mut AutoCommit>,
        new: &mut AutoCommit,
    ) -> Result<Result<(), String>, ReplicaError> {
        let heads = new.get_heads();
        let catalogs = |version: u64| {
            let version = u32::try_from(version).ok()?;
            self.catalogs
                .borrow_mut()
                .entry(version)
                .or_insert_with(|| self.store.catalog_at(version).ok().flatten())
                .clone()
        };
        let actor_node = |actor: &ActorId| self.store.actor_node(actor.to_bytes()).ok().flatten();
        let up = Upstream {
            author: self.upstream_author()?,
            catalog: &catalogs,
            actor_node: &actor_node,
            now: crate::clock::beijing_now(),
        };
        match ingress::judge(old.as_deref(), new, peer, &up) {
            Ok(mut verdict) => {
                let Some(case) = &verdict.derived else {
                    return Ok(Err("the case could not be derived".into()));
                };
                let case_no = case.case_no.clone();
                *self.judged.borrow_mut() = Some((heads.clone(), case.summary()));
                verdict.heads = heads;
                for (id, flag) in &verdict.clock_flags {
                    tracing::warn!(case_no, event = %id, peer, "{flag}");
                }
                if verdict.imported > 0 {
                    tracing::info!(
                        case_no,
                        peer,
                        imported = verdict.imported,
                        "history entries of the previous release imported as events"
                    );
                }
                for (id, reason) in &verdict.refused {
                    tracing::warn!(case_no, event = %id, peer, "event not adopted: {reason}");
                }
                self.verdicts.borrow_mut().insert(case_no, verdict);
                Ok(Ok(()))
            }
            Err(reason) => Ok(Err(reason)),
        }
    }

    fn calendar_version(&self) -> Result<u32, ReplicaError> {
        Ok(self.store.calendar_version()?)
    }

    fn calendar_json(&self) -> Result<String, ReplicaError> {
        Ok(self.store.calendar()?.to_json())
    }

    fn set_calendar(&mut self, version: u32, json: &str) -> Result<(), ReplicaError> {
        Ok(self.store.set_calendar(version, json)?)
    }

    fn catalog_version(&self) -> Result<u32, ReplicaError> {
        Ok(self.store.catalog_version()?)
    }

    fn catalog_json(&self) -> Result<String, ReplicaError> {
        Ok(self.store.catalog_json()?)
    }

    fn set_catalog(&mut self, json: &str) -> Result<(), ReplicaError> {
        self.store.set_catalog(json)?;
        Ok(())
    }

    fn downstream_of(&self, peer: &str) -> Result<Option<Vec<NodeCert>>, ReplicaError> {
        if self.store.identity()?.tier != tongban_shared::Tier::County {
            return Ok(None);
        }
        let county = self.store.county();
        if county
            .node_record(peer)?
            .is_none_or(|r| r.tier != tongban_shared::Tier::Township)
        {
            return Ok(None);
        }
        // Every actor the county bound to a village: the certificate's and declared ones (the
        // township derives the certificate's itself), and those a hub of the previous release bound
        // on first use.
        let mut bound = self.store.actors_by_node()?;
        let villages = county
            .nodes()?
            .into_iter()
            .filter(|n| n.parent.as_deref() == Some(peer))
            .map(|n| {
                let certified = crate::tls::actor_for_serial(&n.serial);
                let actors = bound
                    .remove(&n.code)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| *a != certified)
                    .map(|a| crate::store::keys::hex(&a))
                    .collect();
                NodeCert {
                    code: n.code,
                    serial: n.serial,
                    revoked: n.revoked,
                    actors,
                }
            })
            .collect();
        Ok(Some(villages))
    }

    fn set_downstream(&mut self, nodes: &[NodeCert]) -> Result<(), ReplicaError> {
        Ok(self.store.set_downstream(nodes)?)
    }

    fn actor_allowed(&mut self, peer: &str, actor: &ActorId) -> Result<bool, ReplicaError> {
        match self.store.actor_node(actor.to_bytes())? {
            // A revoked node's changes are refused also when a township relays them.
            Some(node)
                if self
                    .store
                    .county()
                    .node_record(&node)?
                    .is_some_and(|r| r.revoked) =>
            {
                Ok(false)
            }
            Some(node) => Ok(scope::may_hold(peer, &node)),
            // Bound only at enrolment (the county's record, or the township's copy of it) or as
            // the actor the peer's own certificate implies: an actor nobody declared is no one's,
            // so no peer can claim another's before that one first syncs.
            None if self.peer_actor.is_some_and(|own| own == actor.to_bytes()) => {
                self.store.bind_actor(actor.to_bytes(), peer)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
