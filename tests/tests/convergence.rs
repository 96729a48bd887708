//! Deterministic simulations of three tiers syncing: a hub, 2 townships and 4 villages (2 under
//! each) on in-memory replicas, over links that lose, duplicate and reorder messages (messages of
//! different sessions overtake each other), partitions that cut links for a while, and crashes that
//! drop everything not yet durable. Many sessions overlap, village↔township and township↔hub.
//!
//! Two kinds of work run on that network:
//! - here, the protocol core on raw documents: intake at villages and townships, raw edits by every
//!   tier, catalogue updates from the county. After healing every replica holds exactly the cases
//!   of its scope with identical heads, summaries agree, every replica has the county's catalogue
//!   and no acknowledged case is lost;
//! - in `convergence/workflow.rs`, workflow actions by people at every tier on real case documents,
//!   judged by the upstreams as the hub and townships judge them (`ingress`); its own invariants are
//!   listed there.
//!
//! `TONGBAN_SIM_SEEDS=N` sets how many seeded schedules each simulation runs (defaults: 300 here,
//! 1000 for the workflow). A failure names its seed, and `TONGBAN_SIM_SEED=S` replays just that one.

// A crate root's modules sit beside it; this one belongs to the simulator alone.
#[path = "convergence/workflow.rs"]
mod workflow;

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tongban_shared::sync::frame::{encode, FrameDecoder};
use tongban_shared::sync::memory::{converse, MemReplica};
use tongban_shared::sync::summary::{Digest, Prefix};
use tongban_shared::sync::{ClientSession, Msg, Replica, ServerSession};

/// Replica codes: index 0 is the hub, 1-2 townships, 3-6 villages.
const CODES: [&str; 7] = [
    "420222",
    "420222100",
    "420222101",
    "420222100201",
    "420222100202",
    "420222101201",
    "420222101202",
];
/// Each replica's upstream (the hub has none).
const PARENT: [Option<usize>; 7] = [None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(2)];
const HUB: usize = 0;

/// What the network needs of a replica beyond the protocol: to lose what is not durable, and to be
/// compared after healing.
trait SimReplica: Replica {
    fn crash(&mut self);
    fn case_numbers(&self) -> Vec<String>;
    fn digest(&self, case_no: &str) -> Option<Digest>;
}

impl SimReplica for MemReplica {
    fn crash(&mut self) {
        MemReplica::crash(self)
    }
    fn case_numbers(&self) -> Vec<String> {
        MemReplica::case_numbers(self)
    }
    fn digest(&self, case_no: &str) -> Option<Digest> {
        MemReplica::digest(self, case_no)
    }
}

enum InFlight {
    Up(Vec<u8>),
    Down(Vec<u8>),
}

/// A session between replica `client` and its upstream `PARENT[client]`.
struct Session {
    client_idx: usize,
    client: ClientSession,
    server: ServerSession,
    in_flight: InFlight,
}

fn actor(idx: usize) -> ActorId {
    ActorId::from([idx as u8 + 1; 16].as_slice())
}

fn decode(frame: &[u8]) -> Msg {
    let mut d = FrameDecoder::default();
    d.push(frame);
    d.next_msg().unwrap().unwrap()
}

/// A replica may hold a case when the case's scope lies within the replica's code.
fn holds(idx: usize, case_no: &str) -> bool {
    case_no.starts_with(CODES[idx])
}

/// The network: replicas and the links a partition cuts (by client index; nothing crosses a cut
/// link until it heals).
struct Net<R> {
    replicas: Vec<R>,
    cut: [bool; 7],
}

impl<R: SimReplica> Net<R>
where
    R::Error: std::fmt::Debug,
{
    fn start_session(&self, client_idx: usize) -> Session {
        assert!(PARENT[client_idx].is_some(), "the hub has no upstream");
        let mut client = ClientSession::new(vec![CODES[client_idx].to_string()]);
        let hello = client.start(&self.replicas[client_idx]).unwrap();
        Session {
            client_idx,
            client,
            server: ServerSession::new(CODES[client_idx]),
            in_flight: InFlight::Up(encode(&hello).unwrap()),
        }
    }

    /// Two disjoint mutable borrows: the client replica and its upstream.
    fn pair(&mut self, client_idx: usize) -> (&mut R, &mut R) {
        let parent = PARENT[client_idx].expect("no upstream");
        assert!(parent < client_idx);
        let (low, high) = self.replicas.split_at_mut(client_idx);
        (&mut high[0], &mut low[parent])
    }

    /// Advances one session by one message. Returns false when the session ended (done or aborted).
    fn step(&mut self, s: &mut Session, rng: &mut StdRng, loss: f64, dup: f64) -> bool {
        if self.cut[s.client_idx] || rng.gen_bool(loss) {
            return false; // message lost: the connection times out and both sides drop the session
        }
        let (client_replica, server_replica) = self.pair(s.client_idx);
        match std::mem::replace(&mut s.in_flight, InFlight::Up(Vec::new())) {
            InFlight::Up(frame) => {
                let request = decode(&frame);
                let times = if rng.gen_bool(dup) { 2 } else { 1 };
                let mut response = None;
                for _ in 0..times {
                    let r = match s.server.handle(server_replica, request.clone()) {
                        Ok(m) => m,
                        Err(e) => Msg::Error {
                            reason: e.to_string(),
                        },
                    };
                    response.get_or_insert(r);
                }
                s.in_flight = InFlight::Down(encode(&response.unwrap()).unwrap());
                true
            }
            InFlight::Down(frame) => {
                let response = decode(&frame);
                let times = if rng.gen_bool(dup) { 2 } else { 1 };
                let mut next = None;
                for i in 0..times {
                    match s.client.handle(client_replica, response.clone()) {
                        Ok(n) if i == 0 => next = n,
                        Ok(_) => {}
                        // A duplicate the state machine rejects ends the session; that is allowed.
                        Err(_) => return false,
                    }
                }
                match next {
                    Some(req) => {
                        s.in_flight = InFlight::Up(encode(&req).unwrap());
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// A seeded schedule of `steps` steps: local work (`work`, given the replicas), sessions
    /// started and advanced a message at a time, partitions, crashes. Then every link heals.
    fn run(&mut self, rng: &mut StdRng, steps: u32, mut work: impl FnMut(&mut [R], &mut StdRng)) {
        let loss = rng.gen_range(0.0..0.15);
        let dup = rng.gen_range(0.0..0.1);
        let mut sessions: Vec<Session> = Vec::new();
        for _ in 0..steps {
            match rng.gen_range(0..10) {
                0..=3 => work(&mut self.replicas, rng),
                4..=5 if sessions.len() < 6 => {
                    let idx = rng.gen_range(1..CODES.len());
                    if !self.cut[idx] {
                        sessions.push(self.start_session(idx));
                    }
                }
                7 if rng.gen_bool(0.3) => {
                    // A partition starts or ends on one link (a township's link cuts off its whole
                    // branch).
                    let idx = rng.gen_range(1..CODES.len());
                    self.cut[idx] = !self.cut[idx];
                }
                6 => {
                    // A crash: uncommitted writes vanish, every session touching the replica dies.
                    let who = rng.gen_range(0..CODES.len());
                    self.replicas[who].crash();
                    sessions.retain(|s| s.client_idx != who && PARENT[s.client_idx] != Some(who));
                }
                _ if !sessions.is_empty() => {
                    let i = rng.gen_range(0..sessions.len());
                    let mut s = sessions.swap_remove(i);
                    if self.step(&mut s, rng, loss, dup) {
                        sessions.push(s);
                    }
                }
                _ => work(&mut self.replicas, rng),
            }
        }
        self.cut = [false; 7];
    }

    /// Clean sessions up the tree and down it (villages → townships → hub → townships → villages)
    /// until a whole round changes nothing anywhere: what the network does once it heals. A round
    /// that never comes means the tiers keep rewriting each other.
    fn heal(&mut self, seed: u64) {
        let snapshot = |net: &Net<R>| -> Vec<Vec<(String, Option<Digest>)>> {
            net.replicas
                .iter()
                .map(|r| {
                    r.case_numbers()
                        .into_iter()
                        .map(|no| {
                            let d = r.digest(&no);
                            (no, d)
                        })
                        .collect()
                })
                .collect()
        };
        let mut before = snapshot(self);
        for _ in 0..6 {
            for idx in (1..CODES.len()).rev().chain(1..CODES.len()) {
                let (client, server) = self.pair(idx);
                converse(client, vec![CODES[idx].to_string()], server, CODES[idx]).unwrap_or_else(
                    |e| panic!("seed {seed}: clean session of {} failed: {e}", CODES[idx]),
                );
            }
            let after = snapshot(self);
            if after == before {
                return;
            }
            before = after;
        }
        panic!("seed {seed}: the tiers do not settle: every round of sessions changes cases");
    }

    /// Every replica holds exactly the cases of its scope, each with the hub's heads, and the same
    /// summaries and catalogue as the hub.
    fn check_replicas_agree(&self, seed: u64) {
        let hub = &self.replicas[HUB];
        for (idx, code) in CODES.iter().enumerate() {
            let r = &self.replicas[idx];
            let mine = r.case_numbers();
            let expected: Vec<String> = hub
                .case_numbers()
                .into_iter()
                .filter(|n| holds(idx, n))
                .collect();
            assert_eq!(
                mine, expected,
                "seed {seed}: {code} does not hold exactly its scope"
            );
            for no in &mine {
                assert_eq!(
                    r.digest(no),
                    hub.digest(no),
                    "seed {seed}: {no} differs at {code}"
                );
            }
            assert_eq!(
                r.catalog_version().unwrap(),
                hub.catalog_version().unwrap(),
                "seed {seed}: {code} has an old catalogue"
            );
            for scope in r.scope_roots(code).unwrap() {
                assert_eq!(
                    r.node(&scope.0, Prefix::ROOT).unwrap(),
                    hub.node(&scope.0, Prefix::ROOT).unwrap(),
                    "seed {seed}: summary of {} differs at {code}",
                    scope.0
                );
            }
        }
    }
}

/// Runs `run_seed` for the seed `TONGBAN_SIM_SEED` names, or for `TONGBAN_SIM_SEEDS` seeds
/// (`default` without it).
fn run_seeds(name: &str, default: u64, run_seed: impl Fn(u64)) {
    if let Some(seed) = std::env::var("TONGBAN_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_seed(seed);
        return;
    }
    let seeds: u64 = std::env::var("TONGBAN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let started = std::time::Instant::now();
    for seed in 0..seeds {
        run_seed(seed);
    }
    eprintln!(
        "{name}: {seeds} seeds in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The raw-document work: what each replica wrote, and every case a node acknowledged (committed
/// locally), which must reach the hub.
struct RawWork {
    next_seq: Vec<u32>,
    acknowledged: BTreeSet<String>,
}

impl RawWork {
    fn intake(&mut self, replicas: &mut [MemReplica], idx: usize, rng: &mut StdRng) {
        let no = format!("{}-20261127-{:04}", CODES[idx], self.next_seq[idx]);
        self.next_seq[idx] += 1;
        let mut doc = AutoCommit::new().with_actor(actor(idx));
        doc.put(automerge::ROOT, "case_no", no.as_str()).unwrap();
        doc.put(
            automerge::ROOT,
            "applicant",
            format!("申请人{}", rng.gen::<u16>()),
        )
        .unwrap();
        doc.commit();
        replicas[idx].write(&no, &mut doc).unwrap();
        self.acknowledged.insert(no);
    }

    fn edit(replicas: &mut [MemReplica], idx: usize, rng: &mut StdRng) {
        let cases = replicas[idx].case_numbers();
        if cases.is_empty() {
            return;
        }
        let no = cases[rng.gen_range(0..cases.len())].clone();
        let mut doc = replicas[idx].load(&no).unwrap().unwrap();
        doc.set_actor(actor(idx));
        let key = ["state", "note", "deadline"][rng.gen_range(0..3)];
        doc.put(automerge::ROOT, key, format!("v{}", rng.gen::<u32>()))
            .unwrap();
        doc.commit();
        replicas[idx].write(&no, &mut doc).unwrap();
    }

    fn random(&mut self, replicas: &mut [MemReplica], rng: &mut StdRng) {
        match rng.gen_range(0..12) {
            0..=4 => {
                let v = rng.gen_range(3..CODES.len());
                self.intake(replicas, v, rng);
            }
            5 => {
                let t = rng.gen_range(1..3);
                self.intake(replicas, t, rng);
            }
            6..=8 => {
                let idx = rng.gen_range(0..CODES.len());
                RawWork::edit(replicas, idx, rng);
            }
            9 => {
                let next = replicas[HUB].catalog_version().unwrap() + 1;
                replicas[HUB].publish_catalog(next, &next.to_string());
            }
            _ => RawWork::edit(replicas, HUB, rng),
        }
    }
}

fn run_raw_seed(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut replicas: Vec<MemReplica> = CODES.iter().map(|_| MemReplica::default()).collect();
    // Every node's actor is bound to it at enrolment, on every upstream that will see it.
    for (idx, code) in CODES.iter().enumerate() {
        for r in replicas.iter_mut() {
            r.bind_actor(&actor(idx), code);
        }
    }
    let mut net = Net {
        replicas,
        cut: [false; 7],
    };
    let mut work = RawWork {
        next_seq: vec![1; CODES.len()],
        acknowledged: BTreeSet::new(),
    };
    let steps = rng.gen_range(60..160);
    net.run(&mut rng, steps, |replicas, rng| work.random(replicas, rng));
    net.heal(seed);
    net.check_replicas_agree(seed);
    let at_hub: BTreeSet<String> = net.replicas[HUB].case_numbers().into_iter().collect();
    let lost: Vec<&String> = work.acknowledged.difference(&at_hub).collect();
    // A crash cannot lose a case its node acknowledged: `write` commits before returning.
    assert!(
        lost.is_empty(),
        "seed {seed}: acknowledged cases lost: {lost:?}"
    );
}

#[test]
fn three_tiers_converge_under_loss_duplication_reordering_and_crashes() {
    run_seeds("raw documents", 300, run_raw_seed);
}
