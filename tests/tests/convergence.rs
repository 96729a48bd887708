//! Deterministic simulation of the sync protocol core: a hub and several villages on in-memory
//! replicas, random intake and edits on both sides, many overlapping sessions over links that lose,
//! duplicate and reorder messages, catalogue updates, and crashes that drop everything not yet durable. After the network
//! heals, every replica must hold exactly its scope with identical heads, and no acknowledged case may
//! be lost.
//!
//! `TONGBAN_SIM_SEEDS=N` sets how many seeded schedules run (default 400, about 8 s); a failure names its seed, and
//! `TONGBAN_SIM_SEED=S` replays just that one.

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tongban_shared::sync::frame::{encode, FrameDecoder};
use tongban_shared::sync::memory::{converse, MemReplica};
use tongban_shared::sync::summary::Prefix;
use tongban_shared::sync::{ClientSession, Msg, Replica, ServerSession};

const HUB_CODE: &str = "420222";
const VILLAGES: [&str; 3] = ["420222100201", "420222100202", "420222101201"];
const HUB_ACTOR: u8 = 200;

struct World {
    hub: MemReplica,
    villages: Vec<MemReplica>,
    next_seq: Vec<u32>,
    /// Every case a village acknowledged (committed locally): must reach the hub.
    acknowledged: BTreeSet<String>,
}

enum InFlight {
    Up(Vec<u8>),
    Down(Vec<u8>),
}

struct Session {
    village: usize,
    client: ClientSession,
    server: ServerSession,
    in_flight: InFlight,
}

fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16].as_slice())
}

fn decode(frame: &[u8]) -> Msg {
    let mut d = FrameDecoder::default();
    d.push(frame);
    d.next_msg().unwrap().unwrap()
}

impl World {
    fn new() -> World {
        let mut hub = MemReplica::default();
        hub.bind_actor(&actor(HUB_ACTOR), HUB_CODE);
        World {
            hub,
            villages: VILLAGES.iter().map(|_| MemReplica::default()).collect(),
            next_seq: vec![1; VILLAGES.len()],
            acknowledged: BTreeSet::new(),
        }
    }

    fn intake(&mut self, v: usize, rng: &mut StdRng) {
        let no = format!("{}-20261127-{:04}", VILLAGES[v], self.next_seq[v]);
        self.next_seq[v] += 1;
        let mut doc = AutoCommit::new().with_actor(actor(v as u8 + 1));
        doc.put(automerge::ROOT, "case_no", no.as_str()).unwrap();
        doc.put(
            automerge::ROOT,
            "applicant",
            format!("申请人{}", rng.gen::<u16>()),
        )
        .unwrap();
        doc.commit();
        self.villages[v].write(&no, &mut doc).unwrap();
        self.acknowledged.insert(no);
    }

    fn edit(replica: &mut MemReplica, case_no: &str, who: u8, rng: &mut StdRng) {
        let mut doc = replica.load(case_no).unwrap().unwrap();
        doc.set_actor(actor(who));
        let key = ["state", "note", "deadline"][rng.gen_range(0..3)];
        doc.put(automerge::ROOT, key, format!("v{}", rng.gen::<u32>()))
            .unwrap();
        doc.commit();
        replica.write(case_no, &mut doc).unwrap();
    }

    fn random_local_work(&mut self, rng: &mut StdRng) {
        match rng.gen_range(0..10) {
            0..=4 => {
                let v = rng.gen_range(0..VILLAGES.len());
                self.intake(v, rng);
            }
            5..=6 => {
                let v = rng.gen_range(0..VILLAGES.len());
                let cases = self.villages[v].case_numbers();
                if !cases.is_empty() {
                    let no = cases[rng.gen_range(0..cases.len())].clone();
                    World::edit(&mut self.villages[v], &no, v as u8 + 1, rng);
                }
            }
            7 => {
                // The county publishes a new catalogue version.
                let next = self.hub.catalog_version().unwrap() + 1;
                self.hub.publish_catalog(next, &next.to_string());
            }
            _ => {
                let cases = self.hub.case_numbers();
                if !cases.is_empty() {
                    let no = cases[rng.gen_range(0..cases.len())].clone();
                    World::edit(&mut self.hub, &no, HUB_ACTOR, rng);
                }
            }
        }
    }
}

/// Advances one session by one message. Returns false when the session ended (done or aborted).
fn step(world: &mut World, s: &mut Session, rng: &mut StdRng, loss: f64, dup: f64) -> bool {
    if rng.gen_bool(loss) {
        return false; // message lost: the connection times out and both sides drop the session
    }
    match std::mem::replace(&mut s.in_flight, InFlight::Up(Vec::new())) {
        InFlight::Up(frame) => {
            let request = decode(&frame);
            let times = if rng.gen_bool(dup) { 2 } else { 1 };
            let mut response = None;
            for _ in 0..times {
                let r = match s.server.handle(&mut world.hub, request.clone()) {
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
            let village = &mut world.villages[s.village];
            let times = if rng.gen_bool(dup) { 2 } else { 1 };
            let mut next = None;
            for i in 0..times {
                match s.client.handle(village, response.clone()) {
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

fn run_seed(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::new();
    let loss = rng.gen_range(0.0..0.15);
    let dup = rng.gen_range(0.0..0.1);
    let mut sessions: Vec<Session> = Vec::new();

    for _ in 0..rng.gen_range(40..120) {
        match rng.gen_range(0..10) {
            0..=3 => world.random_local_work(&mut rng),
            4..=5 if sessions.len() < 4 => {
                let v = rng.gen_range(0..VILLAGES.len());
                let mut client = ClientSession::new(vec![VILLAGES[v].to_string()]);
                let hello = client.start(&world.villages[v]).unwrap();
                sessions.push(Session {
                    village: v,
                    client,
                    server: ServerSession::new(VILLAGES[v]),
                    in_flight: InFlight::Up(encode(&hello).unwrap()),
                });
            }
            6 => {
                // Crash a replica: uncommitted writes vanish, its sessions die.
                let who = rng.gen_range(0..=VILLAGES.len());
                if who == VILLAGES.len() {
                    world.hub.crash();
                    sessions.clear();
                } else {
                    world.villages[who].crash();
                    sessions.retain(|s| s.village != who);
                }
            }
            _ if !sessions.is_empty() => {
                // Interleave sessions: messages of different sessions overtake each other.
                let i = rng.gen_range(0..sessions.len());
                let mut s = sessions.swap_remove(i);
                if step(&mut world, &mut s, &mut rng, loss, dup) {
                    sessions.push(s);
                }
            }
            _ => world.random_local_work(&mut rng),
        }
    }

    // Heal: clean sessions until nothing moves.
    for _ in 0..4 {
        for (v, code) in VILLAGES.iter().enumerate() {
            let c = converse(
                &mut world.villages[v],
                vec![code.to_string()],
                &mut world.hub,
                code,
            )
            .unwrap_or_else(|e| panic!("seed {seed}: clean session failed: {e}"));
            if std::env::var("TONGBAN_SIM_DEBUG").is_ok() {
                eprintln!("heal {code}: {c:?}");
            }
        }
    }

    for (v, code) in VILLAGES.iter().enumerate() {
        let village = &world.villages[v];
        let mine: Vec<String> = village.case_numbers();
        let hubs: Vec<String> = world
            .hub
            .case_numbers()
            .into_iter()
            .filter(|n| n.starts_with(code))
            .collect();
        assert_eq!(
            mine, hubs,
            "seed {seed}: village {code} and hub hold different cases"
        );
        assert!(
            mine.iter().all(|n| n.starts_with(code)),
            "seed {seed}: village {code} holds another scope's case"
        );
        for no in &mine {
            if village.digest(no) != world.hub.digest(no) {
                eprintln!(
                    "seed {seed}: {no}: {}",
                    describe_divergence(village, &world.hub, no)
                );
            }
            assert_eq!(
                village.digest(no),
                world.hub.digest(no),
                "seed {seed}: {no} differs after healing"
            );
        }
        assert_eq!(
            village.node(code, Prefix::ROOT).unwrap(),
            world.hub.node(code, Prefix::ROOT).unwrap(),
            "seed {seed}: summaries differ"
        );
    }
    for (v, code) in VILLAGES.iter().enumerate() {
        assert_eq!(
            world.villages[v].catalog_version().unwrap(),
            world.hub.catalog_version().unwrap(),
            "seed {seed}: village {code} has an old catalogue"
        );
    }
    let at_hub: BTreeSet<String> = world.hub.case_numbers().into_iter().collect();
    let lost: Vec<&String> = world.acknowledged.difference(&at_hub).collect();
    // A village crash cannot lose a case it acknowledged: `write` commits before returning.
    assert!(
        lost.is_empty(),
        "seed {seed}: acknowledged cases lost: {lost:?}"
    );
}

/// Each side's changes (hash:actor:seq) of a case that did not converge, for the failure message.
fn describe_divergence(a: &MemReplica, b: &MemReplica, case_no: &str) -> String {
    let list = |r: &MemReplica| -> Vec<String> {
        let Some(mut doc) = r.load(case_no).unwrap() else {
            return vec!["(absent)".into()];
        };
        doc.get_changes(&[])
            .iter()
            .map(|c| {
                let hash = c.hash().to_string();
                let actor = c.actor_id().to_hex_string();
                format!("{}:{}:{}", &hash[..6], &actor[..4], c.seq())
            })
            .collect()
    };
    format!("village {:?} / hub {:?}", list(a), list(b))
}

#[test]
fn replicas_converge_under_loss_duplication_reordering_and_crashes() {
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
        .unwrap_or(400);
    for seed in 0..seeds {
        run_seed(seed);
    }
}
