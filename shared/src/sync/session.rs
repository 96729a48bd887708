//! The sync session as a pure state machine: the client (a node syncing with its upstream) and the
//! server (the upstream answering it), each driven by whoever moves the bytes.
//!
//! Neither side touches a socket, a clock or a random source. Storage is reached through [`Replica`],
//! whose implementations are the node's and hub's sled stores and the in-memory replica of the simulator.
//!
//! Flow (the client sends, the server answers each request with one response):
//! 1. `Hello` with the client's root fingerprint per scope → `HelloReply` with the nodes that differ. In
//!    sync: one round trip, a few dozen bytes, and no per-peer checkpoint anywhere.
//! 2. `Compare` for differing children → `CompareReply`, until nodes are answered with their items.
//! 3. The cases whose digests differ go through automerge's own sync protocol in batches of `Sync` /
//!    `SyncReply`, each side starting from a fresh `sync::State`; both sides merge and make the documents
//!    durable ([`Replica::commit`]) before they answer or go on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::sync::{Message, State, SyncDoc};
use automerge::{ActorId, AutoCommit};

use super::frame::{
    DocMsg, LinkReport, Msg, NodeAnswer, NodeCert, NodeQuery, NodeView, Refusal, ScopeRoot,
};
use super::scope;
use super::summary::{Digest, Fp, Prefix, DEPTH, FANOUT, LEAF_ITEMS};

/// Documents synced together in one `Sync` request.
pub const BATCH_DOCS: usize = 64;
/// Payload budget of one `Sync` request; a batch stops growing when it is reached.
pub const BATCH_BYTES: usize = 1024 * 1024;
/// Nodes compared in one `Compare` request.
pub const COMPARE_NODES: usize = 256;
/// Automerge sync converges in a few rounds; a document still talking after this many is a bug or an
/// attack, and is dropped from the session.
const MAX_DOC_ROUNDS: u32 = 16;

/// Storage as the protocol needs it. Implementations decide durability: [`Replica::store`] may buffer,
/// [`Replica::commit`] must not return before every stored document is on disk.
pub trait Replica {
    type Error: std::fmt::Display;

    /// Root fingerprint of every non-empty scope whose code starts with `within`.
    fn scope_roots(&self, within: &str) -> Result<Vec<(String, Fp)>, Self::Error>;
    fn node(&self, scope: &str, prefix: Prefix) -> Result<Fp, Self::Error>;
    /// The [`FANOUT`] children of `prefix`, in nibble order.
    fn children(&self, scope: &str, prefix: Prefix) -> Result<Vec<Fp>, Self::Error>;
    fn items(&self, scope: &str, prefix: Prefix) -> Result<Vec<(String, Digest)>, Self::Error>;
    fn load(&self, case_no: &str) -> Result<Option<AutoCommit>, Self::Error>;
    /// Merges `doc` into the stored version of the case (creating it if new) and updates the summary.
    /// Merging, never overwriting: a local edit or another session may have changed the case since
    /// `doc` was loaded, and none of those changes may be lost.
    fn store(&mut self, case_no: &str, doc: &mut AutoCommit) -> Result<(), Self::Error>;
    /// Client side: cases written here since they last went up, each with the version of that write
    /// and whether the case was new here (so the upstream cannot have it). A hint only: the summary
    /// comparison that follows finds anything these miss. Replicas that keep no such list return none.
    fn outgoing(&self) -> Result<Vec<Outgoing>, Self::Error> {
        Ok(Vec::new())
    }
    /// Client side, after a complete session: forgets the outgoing entries up to `version` (the session
    /// reconciled everything written before it started).
    fn clear_outgoing(&mut self, _version: u64) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The stored document as saved, undecoded: what goes on the wire when the other side has none of
    /// it. Replicas that keep saved bytes return them as they are, sparing a decode and a re-encode.
    fn load_saved(&self, case_no: &str) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.load(case_no)?.map(|mut d| d.save()))
    }
    /// Like [`Replica::store`] for a document that arrived whole, `saved` being its encoding as
    /// received (it decoded to `doc`). A replica that has no version of the case yet may keep `saved`
    /// as it is instead of encoding `doc` again; with a stored version it must merge as `store` does.
    fn store_whole(
        &mut self,
        case_no: &str,
        doc: &mut AutoCommit,
        _saved: &[u8],
    ) -> Result<(), Self::Error> {
        self.store(case_no, doc)
    }
    /// Makes everything stored so far durable.
    fn commit(&mut self) -> Result<(), Self::Error>;
    /// Why the replica refused to store one case, when `e` is such a refusal (a document over the
    /// size budget, say) rather than a fault of the disk: the session refuses that case by itself and
    /// goes on. Faults end the session, so nothing is acknowledged that may not be on disk.
    fn refusal_of(_e: &Self::Error) -> Option<String> {
        None
    }
    /// Server side: whether `peer` may author changes with `actor`: one bound to a node in the
    /// peer's scope (the store replica binds actors only at enrolment, or the one the peer's own
    /// certificate implies; the in-memory one binds on first use).
    fn actor_allowed(&mut self, peer: &str, actor: &ActorId) -> Result<bool, Self::Error>;
    /// Server side: whether what the peer's changes did to a case (`old` as held here, `new` after
    /// merging them) is allowed for that peer; `Ok(Err(reason))` refuses the case. Replicas without
    /// case semantics (the simulator's) allow everything.
    fn check_change(
        &self,
        _peer: &str,
        _old: Option<&mut AutoCommit>,
        _new: &mut AutoCommit,
    ) -> Result<Result<(), String>, Self::Error> {
        Ok(Ok(()))
    }
    /// Server side: the county's record of the nodes below `peer` (a township's villages), which the
    /// peer checks its own downstream against; `None` where this replica is not the county's or the
    /// peer relays for nobody.
    fn downstream_of(&self, _peer: &str) -> Result<Option<Vec<NodeCert>>, Self::Error> {
        Ok(None)
    }
    /// Client side: keeps the county's record of this node's downstream, durably, replacing the last.
    fn set_downstream(&mut self, _nodes: &[NodeCert]) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Version of the working-day calendar tables this replica holds (0: only the built-in table).
    fn calendar_version(&self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    /// The calendar tables as JSON (see `Calendar::to_json`).
    fn calendar_json(&self) -> Result<String, Self::Error> {
        Ok("[]".into())
    }
    /// Client side: takes the upstream's newer calendar tables, durably.
    fn set_calendar(&mut self, _version: u32, _json: &str) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Version of the service catalogue this replica holds.
    fn catalog_version(&self) -> Result<u32, Self::Error>;
    /// The catalogue as JSON (the server sends it to clients with an older version).
    fn catalog_json(&self) -> Result<String, Self::Error>;
    /// Client side: replaces the catalogue with a newer version from upstream, durably. Implementations
    /// check the catalogue and refuse versions that are not newer.
    fn set_catalog(&mut self, json: &str) -> Result<(), Self::Error>;
}

/// A case written locally that has not gone up yet (see [`Replica::outgoing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub case_no: String,
    pub version: u64,
    pub new_here: bool,
}

/// Most nodes one [`Msg::HelloReply`] lists below a township (a township has tens of villages).
pub const MAX_DOWNSTREAM: usize = 4096;

/// More outgoing cases than this go the usual way (summary descent), which is cheaper per case for
/// a bulk upload.
pub const MAX_OUTGOING_HINTS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("peer reported an error: {0}")]
    Peer(String),
}

fn storage<E: std::fmt::Display>(e: E) -> SessionError {
    SessionError::Storage(e.to_string())
}

/// What one session did, for `GET /api/sync` and the benches (bytes are counted by the driver).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionStats {
    pub round_trips: u32,
    pub cases_sent: u32,
    pub cases_received: u32,
    pub refused: Vec<Refusal>,
    /// Server side: the client's count of local writes not yet seen going up.
    pub peer_pending: u32,
    /// Client side: the catalogue version received in this session, if any.
    pub catalog_received: Option<u32>,
    /// Server side: what the client reported of its own downstream links.
    pub peer_links: Vec<LinkReport>,
    /// The other side's clock minus ours at the Hello exchange, when both told (server side: the
    /// peer's skew; client side: the negative of our own). Accurate to about one network delay.
    pub clock_skew_ms: Option<i64>,
}

/// Brings a document held in memory during a session up to date with what is stored now (local edits or
/// other sessions may have written since it was loaded).
fn refresh<R: Replica>(r: &R, case_no: &str, doc: &mut AutoCommit) -> Result<(), SessionError> {
    if let Some(mut stored) = r.load(case_no).map_err(storage)? {
        if stored.get_heads() != doc.get_heads() {
            doc.merge(&mut stored)
                .map_err(|e| SessionError::Storage(format!("case {case_no}: {e}")))?;
        }
    }
    Ok(())
}

fn answer<R: Replica>(
    r: &R,
    scope: &str,
    prefix: Prefix,
    theirs: Fp,
) -> Result<Option<NodeAnswer>, SessionError> {
    let mine = r.node(scope, prefix).map_err(storage)?;
    if mine == theirs {
        return Ok(None);
    }
    let view = if mine.count <= LEAF_ITEMS || prefix.len >= DEPTH {
        NodeView::Items(r.items(scope, prefix).map_err(storage)?)
    } else {
        NodeView::Children(r.children(scope, prefix).map_err(storage)?)
    };
    Ok(Some(NodeAnswer {
        scope: scope.to_string(),
        prefix,
        view,
    }))
}

// ------------------------------------------------------------------------------------------- client

/// How a document of a batch travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Both sides have it: automerge sync.
    Sync,
    /// Only we have it: send it whole.
    Push,
    /// Only the server has it: ask for it whole.
    Pull,
}

/// One document of the current batch. The document stays in memory for the whole conversation: automerge
/// keeps changes whose dependencies have not arrived yet in an in-memory queue that `save` does not
/// write, so reloading it between rounds would silently drop them and the sync would never converge.
#[derive(Debug)]
struct DocProgress {
    mode: Mode,
    /// Push/Pull documents are done after one exchange.
    done: bool,
    /// Push documents travel as stored (`saved`) and are never decoded; the others are held decoded.
    doc: AutoCommit,
    saved: Option<Vec<u8>>,
    state: State,
    /// Whether the server's last answer for this document carried a message (so we must answer too).
    server_spoke: bool,
    rounds: u32,
    /// Whether this case already counted in `cases_sent`.
    sent_changes: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Start,
    AwaitHello,
    AwaitCompare,
    AwaitSync,
    Done,
}

/// The downstream side. Create one per session; feed it the server's responses.
#[derive(Debug)]
pub struct ClientSession {
    /// Scopes this replica holds and reconciles (its own code; a township adds its villages').
    scopes: Vec<String>,
    phase: Phase,
    compare_queue: VecDeque<NodeQuery>,
    /// Cases found to differ, not yet in a batch, with how each will travel.
    doc_queue: VecDeque<(String, Mode)>,
    queued: BTreeSet<String>,
    batch: BTreeMap<String, DocProgress>,
    stats: SessionStats,
    pending: u32,
    links: Vec<LinkReport>,
    clock_ms: i64,
    /// Sending the outgoing cases before `Hello`, so that the summaries then already agree.
    early: bool,
    /// The highest outgoing version seen at the start (cleared after a complete session).
    outgoing_version: Option<u64>,
}

impl ClientSession {
    pub fn new(scopes: Vec<String>) -> ClientSession {
        ClientSession {
            scopes,
            phase: Phase::Start,
            compare_queue: VecDeque::new(),
            doc_queue: VecDeque::new(),
            queued: BTreeSet::new(),
            batch: BTreeMap::new(),
            stats: SessionStats::default(),
            pending: 0,
            links: Vec::new(),
            clock_ms: 0,
            early: false,
            outgoing_version: None,
        }
    }

    /// The version up to which the replica's outgoing list was reconciled by this session; the driver
    /// passes it to [`Replica::clear_outgoing`] once the session completed.
    pub fn outgoing_version(&self) -> Option<u64> {
        self.outgoing_version
    }

    /// Tells the server this replica's clock (ms since the Unix epoch) in `Hello`.
    pub fn with_clock(mut self, clock_ms: i64) -> ClientSession {
        self.clock_ms = clock_ms;
        self
    }

    /// Reports the state of this node's downstream links (a township's villages) to the server.
    pub fn with_links(mut self, links: Vec<LinkReport>) -> ClientSession {
        self.links = links;
        self
    }

    /// Reports `pending` local writes to the server (for its operators' view).
    pub fn with_pending(mut self, pending: u32) -> ClientSession {
        self.pending = pending;
        self
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// The opening request: the cases written here since the last session first, when there are not
    /// too many (each costs its own bytes and about 30 more, against a summary descent of several
    /// hundred bytes per scattered case), then `Hello`.
    pub fn start<R: Replica>(&mut self, r: &R) -> Result<Msg, SessionError> {
        let outgoing = r.outgoing().map_err(storage)?;
        self.outgoing_version = outgoing.iter().map(|o| o.version).max();
        let mine: Vec<&Outgoing> = outgoing
            .iter()
            .filter(|o| {
                scope::scope_of(&o.case_no).is_some_and(|s| {
                    self.scopes
                        .iter()
                        .any(|within| s.starts_with(within.as_str()))
                })
            })
            .collect();
        if !mine.is_empty() && mine.len() <= MAX_OUTGOING_HINTS {
            for o in mine {
                self.queue_doc(&o.case_no, if o.new_here { Mode::Push } else { Mode::Sync });
            }
            self.early = true;
            if let Some(first) = self.next_request(r)? {
                return Ok(first);
            }
            self.early = false;
        }
        self.hello(r)
    }

    fn hello<R: Replica>(&mut self, r: &R) -> Result<Msg, SessionError> {
        // Cases sent early may differ again by now (a local edit): let the descent queue them anew.
        self.queued.clear();
        let mut roots = BTreeMap::new();
        for within in &self.scopes {
            for (scope, fp) in r.scope_roots(within).map_err(storage)? {
                roots.insert(scope, fp);
            }
            // An empty scope is still announced, so the server sends what it holds there.
            roots.entry(within.clone()).or_insert(Fp::EMPTY);
        }
        self.phase = Phase::AwaitHello;
        Ok(Msg::Hello {
            scopes: roots
                .into_iter()
                .map(|(scope, fp)| ScopeRoot { scope, fp })
                .collect(),
            catalog_version: r.catalog_version().map_err(storage)?,
            calendar_version: r.calendar_version().map_err(storage)?,
            pending: self.pending,
            links: std::mem::take(&mut self.links),
            clock_ms: self.clock_ms,
        })
    }

    /// Handles a response; returns the next request, or `None` when the session is complete.
    pub fn handle<R: Replica>(&mut self, r: &mut R, msg: Msg) -> Result<Option<Msg>, SessionError> {
        guarded(|| self.handle_unguarded(r, msg))
    }

    fn handle_unguarded<R: Replica>(
        &mut self,
        r: &mut R,
        msg: Msg,
    ) -> Result<Option<Msg>, SessionError> {
        self.stats.round_trips += 1;
        match (&self.phase, msg) {
            (_, Msg::Error { reason }) => return Err(SessionError::Peer(reason)),
            (
                Phase::AwaitHello,
                Msg::HelloReply {
                    differ,
                    refused,
                    catalog,
                    calendar,
                    clock_ms,
                    downstream,
                },
            ) => {
                if clock_ms != 0 && self.clock_ms != 0 {
                    self.stats.clock_skew_ms = Some(clock_ms.saturating_sub(self.clock_ms));
                }
                if let Some((version, json)) = calendar {
                    r.set_calendar(version, &json).map_err(storage)?;
                }
                if let Some(mut nodes) = downstream {
                    // Only what lies below this node means anything here.
                    nodes.retain(|n| self.scopes.iter().any(|s| scope::may_hold(s, &n.code)));
                    nodes.truncate(MAX_DOWNSTREAM);
                    r.set_downstream(&nodes).map_err(storage)?;
                }
                self.stats.refused.extend(refused);
                if let Some(json) = catalog {
                    r.set_catalog(&json).map_err(storage)?;
                    self.stats.catalog_received = Some(r.catalog_version().map_err(storage)?);
                }
                for a in differ {
                    self.take_answer(r, a)?;
                }
            }
            (Phase::AwaitCompare, Msg::CompareReply { differ }) => {
                for a in differ {
                    self.take_answer(r, a)?;
                }
            }
            (Phase::AwaitSync, Msg::SyncReply { docs, refused }) => {
                self.take_sync_reply(r, docs, refused)?;
            }
            (phase, other) => {
                return Err(SessionError::Protocol(format!(
                    "unexpected {} while {phase:?}",
                    other.kind()
                )))
            }
        }
        match self.next_request(r)? {
            Some(next) => Ok(Some(next)),
            None if self.early => {
                self.early = false;
                self.hello(r).map(Some)
            }
            None => Ok(None),
        }
    }

    fn take_answer<R: Replica>(&mut self, r: &R, a: NodeAnswer) -> Result<(), SessionError> {
        if !a.prefix.is_valid() {
            return Err(SessionError::Protocol(format!(
                "invalid trie node {:?}",
                a.prefix
            )));
        }
        match a.view {
            NodeView::Items(theirs) => {
                let mine: BTreeMap<String, Digest> = r
                    .items(&a.scope, a.prefix)
                    .map_err(storage)?
                    .into_iter()
                    .collect();
                let theirs: BTreeMap<String, Digest> = theirs.into_iter().collect();
                for (no, d) in &mine {
                    match theirs.get(no) {
                        Some(t) if t == d => {}
                        Some(_) => self.queue_doc(no, Mode::Sync),
                        None => self.queue_doc(no, Mode::Push),
                    }
                }
                for no in theirs.keys() {
                    if !mine.contains_key(no) {
                        self.queue_doc(no, Mode::Pull);
                    }
                }
            }
            NodeView::Children(theirs) => {
                if theirs.len() != FANOUT || a.prefix.len >= DEPTH {
                    return Err(SessionError::Protocol("malformed children".into()));
                }
                let mine = r.children(&a.scope, a.prefix).map_err(storage)?;
                for (nibble, (m, t)) in mine.iter().zip(&theirs).enumerate() {
                    if m == t {
                        continue;
                    }
                    let child = a.prefix.child(nibble as u8);
                    if t.is_empty() {
                        // The server has nothing there: everything we hold there goes up.
                        for (no, _) in r.items(&a.scope, child).map_err(storage)? {
                            self.queue_doc(&no, Mode::Push);
                        }
                    } else {
                        self.compare_queue.push_back(NodeQuery {
                            scope: a.scope.clone(),
                            prefix: child,
                            fp: *m,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn queue_doc(&mut self, case_no: &str, mode: Mode) {
        if self.queued.insert(case_no.to_string()) {
            self.doc_queue.push_back((case_no.to_string(), mode));
        }
    }

    fn take_sync_reply<R: Replica>(
        &mut self,
        r: &mut R,
        docs: Vec<DocMsg>,
        refused: Vec<Refusal>,
    ) -> Result<(), SessionError> {
        for refusal in refused {
            self.batch.remove(&refusal.subject);
            self.stats.refused.push(refusal);
        }
        let mut changed = false;
        for d in docs {
            let Some(progress) = self.batch.get_mut(&d.case_no) else {
                return Err(SessionError::Protocol(format!(
                    "answer for case {} that was not asked about",
                    d.case_no
                )));
            };
            // What the upstream sent for one case may be unusable; that case is refused by itself.
            let mut refuse = |reason: String| {
                self.stats.refused.push(Refusal {
                    subject: d.case_no.clone(),
                    reason,
                })
            };
            if progress.mode != Mode::Sync {
                progress.done = true;
                if let Some(bytes) = d.full {
                    if let Err(why) = crate::limits::check_case_size(bytes.len()) {
                        refuse(format!("{why}，未保存"));
                        continue;
                    }
                    if let Err(why) = crate::inflation::check_inflation([bytes.as_slice()]) {
                        refuse(format!("the document does not load: {why}"));
                        continue;
                    }
                    let mut doc = match AutoCommit::load(&bytes) {
                        Ok(doc) => doc,
                        Err(e) => {
                            refuse(format!("the document does not load: {e}"));
                            continue;
                        }
                    };
                    match r.store_whole(&d.case_no, &mut doc, &bytes) {
                        Ok(()) => {}
                        Err(e) => match R::refusal_of(&e) {
                            Some(why) => {
                                refuse(why);
                                continue;
                            }
                            None => return Err(storage(e)),
                        },
                    }
                    self.stats.cases_received += 1;
                    changed = true;
                }
                continue;
            }
            progress.server_spoke = d.msg.is_some();
            let Some(bytes) = d.msg else { continue };
            let before = progress.doc.get_heads();
            let received = decode_sync_message(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    progress
                        .doc
                        .sync()
                        .receive_sync_message(&mut progress.state, m)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = received {
                refuse(format!("the sync message does not apply: {e}"));
                self.batch.remove(&d.case_no);
                continue;
            }
            if progress.doc.get_heads() != before {
                if let Err(e) = r.store(&d.case_no, &mut progress.doc) {
                    let why = R::refusal_of(&e).ok_or_else(|| storage(e))?;
                    refuse(why);
                    self.batch.remove(&d.case_no);
                    continue;
                }
                self.stats.cases_received += 1;
                changed = true;
            }
        }
        if changed {
            r.commit().map_err(storage)?;
        }
        Ok(())
    }

    fn next_request<R: Replica>(&mut self, r: &R) -> Result<Option<Msg>, SessionError> {
        if !self.compare_queue.is_empty() {
            let n = self.compare_queue.len().min(COMPARE_NODES);
            let nodes: Vec<NodeQuery> = self.compare_queue.drain(..n).collect();
            self.phase = Phase::AwaitCompare;
            return Ok(Some(Msg::Compare { nodes }));
        }
        loop {
            // Continue the current batch while any document still has something to say.
            let mut docs = Vec::new();
            let mut finished = Vec::new();
            for (case_no, progress) in self.batch.iter_mut() {
                match (progress.mode, progress.done, progress.rounds) {
                    (_, true, _) => {
                        finished.push(case_no.clone());
                        continue;
                    }
                    (Mode::Push, false, 0) => {
                        progress.rounds = 1;
                        self.stats.cases_sent += 1;
                        docs.push(DocMsg {
                            case_no: case_no.clone(),
                            msg: None,
                            full: Some(match progress.saved.take() {
                                Some(bytes) => bytes,
                                None => progress.doc.save(),
                            }),
                            want_full: false,
                        });
                        continue;
                    }
                    (Mode::Pull, false, 0) => {
                        progress.rounds = 1;
                        docs.push(DocMsg {
                            case_no: case_no.clone(),
                            msg: None,
                            full: None,
                            want_full: true,
                        });
                        continue;
                    }
                    (Mode::Push | Mode::Pull, false, _) => {
                        // Asked once and not answered: the server dropped it (refused, or gone).
                        finished.push(case_no.clone());
                        continue;
                    }
                    (Mode::Sync, ..) => {}
                }
                if progress.rounds > 0 {
                    // Loaded when the batch began; later rounds catch up with writes since.
                    refresh(r, case_no, &mut progress.doc)?;
                }
                let msg = progress
                    .doc
                    .sync()
                    .generate_sync_message(&mut progress.state);
                if msg.is_none() && !progress.server_spoke {
                    finished.push(case_no.clone());
                    continue;
                }
                progress.rounds += 1;
                if progress.rounds > MAX_DOC_ROUNDS {
                    finished.push(case_no.clone());
                    self.stats.refused.push(Refusal {
                        subject: case_no.clone(),
                        reason: "automerge sync did not converge".into(),
                    });
                    continue;
                }
                if msg.as_ref().is_some_and(|m| !m.changes.is_empty()) && !progress.sent_changes {
                    progress.sent_changes = true;
                    self.stats.cases_sent += 1;
                }
                docs.push(DocMsg::sync(case_no.clone(), msg.map(Message::encode)));
            }
            for f in finished {
                self.batch.remove(&f);
            }
            if !docs.is_empty() {
                self.phase = Phase::AwaitSync;
                return Ok(Some(Msg::Sync { docs }));
            }
            // Current batch complete: start the next one, or finish.
            if self.doc_queue.is_empty() {
                self.phase = Phase::Done;
                return Ok(None);
            }
            let mut budget = 0usize;
            while let Some((case_no, mode)) = self.doc_queue.pop_front() {
                // What goes up is read once; a case stored before the budget existed would not fit
                // a frame with others, and the upstream refuses it anyway: reported, not sent.
                let saved = match mode {
                    Mode::Pull => None,
                    Mode::Push | Mode::Sync => r.load_saved(&case_no).map_err(storage)?,
                };
                let size = saved.as_ref().map_or(0, Vec::len);
                if let Err(why) = crate::limits::check_case_size(size) {
                    self.stats.refused.push(Refusal {
                        subject: case_no,
                        reason: format!("{why}，无法上传"),
                    });
                    continue;
                }
                budget += size;
                let (doc, saved) = match mode {
                    Mode::Push => (AutoCommit::new(), saved),
                    Mode::Pull => (AutoCommit::new(), None),
                    Mode::Sync => {
                        let doc = match saved {
                            Some(bytes) => AutoCommit::load(&bytes).map_err(|e| {
                                SessionError::Storage(format!("case {case_no}: {e}"))
                            })?,
                            None => AutoCommit::new(),
                        };
                        (doc, None)
                    }
                };
                self.batch.insert(
                    case_no,
                    DocProgress {
                        mode,
                        done: false,
                        doc,
                        saved,
                        state: State::new(),
                        server_spoke: false,
                        rounds: 0,
                        sent_changes: false,
                    },
                );
                if self.batch.len() >= BATCH_DOCS || budget >= BATCH_BYTES {
                    break;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------- server

/// The upstream side of one session with one authenticated peer.
#[derive(Debug)]
pub struct ServerSession {
    /// The peer's division code, from its certificate (never from its messages).
    peer: String,
    /// Documents of the client's current batch with their sync state, kept in memory between rounds
    /// for the same reason as on the client (see `DocProgress`); bounded by the batch size.
    docs: BTreeMap<String, (AutoCommit, State)>,
    refused_cases: BTreeSet<String>,
    stats: SessionStats,
    clock_ms: i64,
}

impl ServerSession {
    pub fn new(peer_code: &str) -> ServerSession {
        ServerSession {
            peer: peer_code.to_string(),
            docs: BTreeMap::new(),
            refused_cases: BTreeSet::new(),
            stats: SessionStats::default(),
            clock_ms: 0,
        }
    }

    /// Tells the client the server's clock (ms since the Unix epoch) in `HelloReply`.
    pub fn with_clock(mut self, clock_ms: i64) -> ServerSession {
        self.clock_ms = clock_ms;
        self
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Answers one request. Errors end the session; the driver sends `Msg::Error` with the reason.
    pub fn handle<R: Replica>(&mut self, r: &mut R, msg: Msg) -> Result<Msg, SessionError> {
        guarded(|| self.handle_unguarded(r, msg))
    }

    fn handle_unguarded<R: Replica>(&mut self, r: &mut R, msg: Msg) -> Result<Msg, SessionError> {
        self.stats.round_trips += 1;
        match msg {
            Msg::Hello {
                scopes,
                catalog_version,
                calendar_version,
                pending,
                links,
                clock_ms,
            } => {
                self.stats.peer_pending = pending;
                if clock_ms != 0 && self.clock_ms != 0 {
                    self.stats.clock_skew_ms = Some(clock_ms.saturating_sub(self.clock_ms));
                }
                // Only links inside the peer's own scope count; the rest is noise or a lie.
                self.stats.peer_links = links
                    .into_iter()
                    .filter(|l| scope::may_hold(&self.peer, &l.code) && l.code != self.peer)
                    .take(1024)
                    .collect();
                self.hello(r, scopes, catalog_version, calendar_version)
            }
            Msg::Compare { nodes } => {
                if nodes.len() > COMPARE_NODES {
                    return Err(SessionError::Protocol(format!(
                        "{} nodes in one Compare (limit {COMPARE_NODES})",
                        nodes.len()
                    )));
                }
                let mut differ = Vec::new();
                for q in nodes {
                    if !q.prefix.is_valid() {
                        return Err(SessionError::Protocol(format!(
                            "invalid trie node {:?}",
                            q.prefix
                        )));
                    }
                    if !scope::may_hold(&self.peer, &q.scope) {
                        return Err(SessionError::Protocol(format!(
                            "scope {} is outside the peer's",
                            q.scope
                        )));
                    }
                    if let Some(a) = answer(r, &q.scope, q.prefix, q.fp)? {
                        differ.push(a);
                    }
                }
                Ok(Msg::CompareReply { differ })
            }
            Msg::Sync { docs } => self.sync(r, docs),
            other => Err(SessionError::Protocol(format!(
                "{} is not a request",
                other.kind()
            ))),
        }
    }

    fn hello<R: Replica>(
        &mut self,
        r: &R,
        scopes: Vec<ScopeRoot>,
        their_catalog: u32,
        their_calendar: u32,
    ) -> Result<Msg, SessionError> {
        let mut refused = Vec::new();
        let mut theirs: BTreeMap<String, Fp> = BTreeMap::new();
        for s in scopes {
            if scope::may_hold(&self.peer, &s.scope) {
                theirs.insert(s.scope, s.fp);
            } else {
                refused.push(Refusal {
                    reason: format!("scope {} is not within node {}", s.scope, self.peer),
                    subject: s.scope,
                });
            }
        }
        // Scopes we hold for this peer that it did not mention: it lost them, or never had them.
        for (scope, _) in r.scope_roots(&self.peer).map_err(storage)? {
            theirs.entry(scope).or_insert(Fp::EMPTY);
        }
        let mut differ = Vec::new();
        for (scope, fp) in theirs {
            if let Some(a) = answer(r, &scope, Prefix::ROOT, fp)? {
                differ.push(a);
            }
        }
        self.stats.refused.extend(refused.iter().cloned());
        // The catalogue flows down only: a newer one at the server replaces the client's.
        let catalog = if r.catalog_version().map_err(storage)? > their_catalog {
            Some(r.catalog_json().map_err(storage)?)
        } else {
            None
        };
        let ours = r.calendar_version().map_err(storage)?;
        let calendar = if ours > their_calendar {
            Some((ours, r.calendar_json().map_err(storage)?))
        } else {
            None
        };
        let downstream = r
            .downstream_of(&self.peer)
            .map_err(storage)?
            .map(|mut nodes| {
                nodes.truncate(MAX_DOWNSTREAM);
                nodes
            });
        Ok(Msg::HelloReply {
            differ,
            refused,
            catalog,
            calendar,
            clock_ms: self.clock_ms,
            downstream,
        })
    }

    fn sync<R: Replica>(&mut self, r: &mut R, docs: Vec<DocMsg>) -> Result<Msg, SessionError> {
        if docs.len() > BATCH_DOCS {
            return Err(SessionError::Protocol(format!(
                "{} documents in one Sync (limit {BATCH_DOCS})",
                docs.len()
            )));
        }
        let mut refused = Vec::new();
        // A document the client no longer mentions has finished: forget it, so memory stays bounded.
        let asked: BTreeSet<&str> = docs.iter().map(|d| d.case_no.as_str()).collect();
        self.docs.retain(|no, _| asked.contains(no.as_str()));
        let mut answered = Vec::new();
        let mut replies = Vec::new();
        let mut changed = false;
        for d in docs {
            let allowed =
                scope::scope_of(&d.case_no).is_some_and(|s| scope::may_hold(&self.peer, s));
            if !allowed || self.refused_cases.contains(&d.case_no) {
                refused.push(Refusal {
                    subject: d.case_no.clone(),
                    reason: if allowed {
                        "case refused earlier in this session".into()
                    } else {
                        format!("case {} is outside node {}'s scope", d.case_no, self.peer)
                    },
                });
                continue;
            }
            if let Some((held, _)) = self.docs.get_mut(&d.case_no) {
                // Held since an earlier round: catch up with what was written since.
                refresh(r, &d.case_no, held)?;
            } else {
                let doc = r
                    .load(&d.case_no)
                    .map_err(storage)?
                    .unwrap_or_else(AutoCommit::new);
                self.docs.insert(d.case_no.clone(), (doc, State::new()));
            }
            let Some((doc, state)) = self.docs.get_mut(&d.case_no) else {
                continue;
            };
            if d.want_full {
                // The client has none of it: the whole document, no conversation.
                let full = (!doc.get_heads().is_empty()).then(|| doc.save());
                if let Some(Err(why)) = full
                    .as_ref()
                    .map(|f| crate::limits::check_case_size(f.len()))
                {
                    self.docs.remove(&d.case_no);
                    refused.push(Refusal {
                        subject: d.case_no.clone(),
                        reason: format!("{why}，无法下发"),
                    });
                    continue;
                }
                replies.push(DocMsg {
                    case_no: d.case_no.clone(),
                    msg: None,
                    full,
                    want_full: false,
                });
                self.docs.remove(&d.case_no);
                continue;
            }
            let before = doc.get_heads();
            // Merge into a copy: if any new change is not the peer's to make, the document stays
            // exactly as it was, in memory and on disk.
            let mut merged_state = state.clone();
            let whole = d.full;
            // What the peer sent for this case may not load or apply, or be over the size budget
            // (checked before it is inflated): that case is refused, the session goes on.
            let merged = match &whole {
                Some(bytes) => crate::limits::check_case_size(bytes.len())
                    .map_err(|why| format!("{why}，未保存"))
                    .and_then(|()| crate::inflation::check_inflation([bytes.as_slice()]))
                    .and_then(|()| AutoCommit::load(bytes).map_err(|e| e.to_string()))
                    .and_then(|mut theirs| {
                        if before.is_empty() {
                            // New here: what arrived is the whole document, nothing to merge into.
                            return Ok(theirs);
                        }
                        let mut merged = doc.fork();
                        merged.merge(&mut theirs).map_err(|e| e.to_string())?;
                        Ok(merged)
                    }),
                None => {
                    let mut merged = doc.fork();
                    match d.msg.as_deref().map(decode_sync_message) {
                        None => Ok(merged),
                        Some(Err(e)) => Err(e.to_string()),
                        Some(Ok(message)) => {
                            let received = merged
                                .sync()
                                .receive_sync_message(&mut merged_state, message);
                            received.map_err(|e| e.to_string()).map(|()| merged)
                        }
                    }
                }
            };
            let mut merged = match merged {
                Ok(m) => m,
                Err(reason) => {
                    self.docs.remove(&d.case_no);
                    self.refused_cases.insert(d.case_no.clone());
                    refused.push(Refusal {
                        subject: d.case_no.clone(),
                        reason: format!("the document the peer sent is unusable: {reason}"),
                    });
                    continue;
                }
            };
            if merged.get_heads() != before {
                let mut foreign = None;
                // Metadata only: collecting whole changes re-encodes every operation.
                let mut actors: Vec<ActorId> = merged
                    .get_changes_meta(&before)
                    .into_iter()
                    .map(|m| m.actor.into_owned())
                    .collect();
                actors.sort();
                actors.dedup();
                for actor in actors {
                    if !r.actor_allowed(&self.peer, &actor).map_err(storage)? {
                        foreign = Some(actor.to_hex_string());
                        break;
                    }
                }
                let new_here = whole.is_some() && before.is_empty();
                let verdict = match foreign {
                    Some(actor) => Err(format!(
                        "change by actor {actor}, which is not bound to node {}",
                        self.peer
                    )),
                    // automerge 0.12 accepts some malformed changes whose merged document then
                    // saves into bytes it cannot load again; such a case would be lost at the hub.
                    // (A document new here was loaded from the very bytes that will be stored.)
                    None if !new_here => {
                        let saved = merged.save();
                        if AutoCommit::load(&saved).is_err() {
                            Err("the change leaves the case unreadable; not stored".to_string())
                        } else if let Err(why) = crate::limits::check_case_size(saved.len()) {
                            Err(format!("{why}，未保存"))
                        } else {
                            r.check_change(&self.peer, Some(&mut *doc), &mut merged)
                                .map_err(storage)?
                        }
                    }
                    None => r
                        .check_change(&self.peer, None, &mut merged)
                        .map_err(storage)?,
                };
                if let Err(reason) = verdict {
                    self.docs.remove(&d.case_no);
                    self.refused_cases.insert(d.case_no.clone());
                    refused.push(Refusal {
                        subject: d.case_no.clone(),
                        reason,
                    });
                    continue;
                }
                let stored = match &whole {
                    Some(bytes) if before.is_empty() => {
                        r.store_whole(&d.case_no, &mut merged, bytes)
                    }
                    _ => r.store(&d.case_no, &mut merged),
                };
                if let Err(e) = stored {
                    // The store's own refusal (the upstream's verdict pushed the case over the
                    // budget, say); a fault of the disk ends the session.
                    let reason = R::refusal_of(&e).ok_or_else(|| storage(e))?;
                    self.docs.remove(&d.case_no);
                    self.refused_cases.insert(d.case_no.clone());
                    refused.push(Refusal {
                        subject: d.case_no.clone(),
                        reason,
                    });
                    continue;
                }
                self.stats.cases_received += 1;
                changed = true;
            }
            if whole.is_some() {
                // Acknowledged once it is durable (below); nothing more to say about it.
                replies.push(DocMsg::sync(d.case_no.clone(), None));
                self.docs.remove(&d.case_no);
                continue;
            }
            *doc = merged;
            *state = merged_state;
            answered.push(d.case_no);
        }
        // Durable before we answer: the client may count what it sent as delivered once it hears back.
        if changed {
            r.commit().map_err(storage)?;
        }
        let mut out = replies;
        for case_no in answered {
            if let Some((doc, state)) = self.docs.get_mut(&case_no) {
                if changed {
                    // Storing may have added the upstream's own changes (its verdict on the peer's
                    // events): they go back in this same answer.
                    refresh(r, &case_no, doc)?;
                }
                let msg = doc.sync().generate_sync_message(state).map(Message::encode);
                out.push(DocMsg::sync(case_no, msg));
            }
        }
        self.stats.refused.extend(refused.iter().cloned());
        Ok(Msg::SyncReply { docs: out, refused })
    }
}

/// Runs a step of a session over what a peer sent, turning a panic inside automerge (0.12 panics on
/// some malformed changes and documents, see shared/tests/fuzz.rs) into a protocol error that ends
/// only this session. Whatever the step stored before the panic is whole documents only.
fn guarded<T>(step: impl FnOnce() -> Result<T, SessionError>) -> Result<T, SessionError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(SessionError::Protocol(format!(
                "malformed automerge data ({what})"
            )))
        }
    }
}

/// Probes and bits per entry a bloom filter may ask for. automerge itself uses 7 and 10; a filter
/// asking for 2³² probes makes it allocate 16 GiB and abort the process, which no `catch_unwind`
/// can stop, and one with no bits divides by zero.
const MAX_BLOOM_PROBES: u64 = 64;
const MAX_BLOOM_BITS_PER_ENTRY: u64 = 64;

/// Decodes a peer's automerge sync message and refuses what automerge would choke on: bloom filters
/// with absurd parameters, hash lists out of order, and changes that inflate past the cap.
pub fn decode_sync_message(bytes: &[u8]) -> Result<Message, String> {
    let message = Message::decode(bytes).map_err(|e| e.to_string())?;
    crate::inflation::check_inflation(message.changes.iter())?;
    let sorted = |hashes: &[automerge::ChangeHash]| hashes.windows(2).all(|w| w[0] < w[1]);
    if !sorted(&message.heads) || !sorted(&message.need) {
        return Err("sync message with heads or needs out of order".into());
    }
    for have in &message.have {
        if !sorted(&have.last_sync) {
            return Err("sync message with last-sync heads out of order".into());
        }
        let bloom = have.bloom.to_bytes();
        let mut pos = 0;
        let mut next = || read_leb128(&bloom, &mut pos);
        if let (Some(entries), Some(bits), Some(probes)) = (next(), next(), next()) {
            if entries > 0
                && !((1..=MAX_BLOOM_BITS_PER_ENTRY).contains(&bits)
                    && (1..=MAX_BLOOM_PROBES).contains(&probes))
            {
                return Err(format!(
                    "sync message with a bloom filter of {bits} bits per entry and {probes} probes"
                ));
            }
        }
    }
    Ok(message)
}

fn read_leb128(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
