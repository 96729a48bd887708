//! Workflow actions at every tier on real case documents, over the network of `convergence.rs`.
//!
//! People act as they would, each on whatever their tier holds, offline or not:
//! - village agents and township clerks take cases in and follow them (township receipt, escalation,
//!   correction, delivery, evaluation, amending the applicant's data, 村级当场办结 where the catalogue
//!   allows it, 中台 questions);
//! - the county window, the departments (handling and assisting) and the supervisor run the back
//!   office (answers to questions and fee payments included).
//!
//! Every action goes through `workflow::apply`, picked from what `workflow::available` offers that
//! person on the case as their tier derives it. Nodes also write events they may not write, as a
//! forged or broken node would: a county-only kind, a county author, another village's name (from a
//! village, or from a township with its own actor), a
//! 村级办结 of an item that needs the department. The hub and the townships judge what their peers
//! send with `ingress::judge` and settle it with `ingress::settle`, as the sled replica does. Node
//! clocks are skewed by up to two hours either way.
//!
//! After healing, for every case:
//! - every tier holding it has the same events, byte for byte, and derives the same case;
//! - every event a person's action wrote (durable before the action returned) is at the hub;
//! - no event an honest action wrote is refused;
//! - every forged event is refused exactly once and has no effect anywhere;
//! - no event is refused twice, and no event of a county-only kind written by a node takes effect.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, AutoCommit};
use chrono::{DateTime, Duration, FixedOffset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tongban_shared::action::ActionKind;
use tongban_shared::calendar::Calendar;
use tongban_shared::case::{self, Agent, CaseDoc, IntakeContext, IntakeRequest, ValidIntake};
use tongban_shared::catalog::Catalog;
use tongban_shared::event::{self, Author, Event, Inputs};
use tongban_shared::fold;
use tongban_shared::ingress::{self, Judged, Upstream};
use tongban_shared::sync::memory::MemReplica;
use tongban_shared::sync::summary::{Digest, Fp, Prefix};
use tongban_shared::sync::Replica;
use tongban_shared::workflow::{self, ActionInput, Actor, Context, Role};
use tongban_shared::Tier;

use super::{actor, holds, run_seeds, Net, SimReplica, CODES, HUB, PARENT};

fn tier_of(idx: usize) -> Tier {
    match idx {
        HUB => Tier::County,
        1 | 2 => Tier::Township,
        _ => Tier::Village,
    }
}

/// A replica that stores real cases and, as a server, judges like its tier: the hub for everyone,
/// a township for its villages.
struct CaseReplica {
    mem: MemReplica,
    idx: usize,
    /// This replica's clock (the simulation sets it before every step of work).
    now: DateTime<FixedOffset>,
    catalog: Catalog,
    /// Verdicts of `check_change` by case, settled when the case is stored (as `SledReplica` does).
    verdicts: RefCell<BTreeMap<String, Judged>>,
}

impl CaseReplica {
    /// Who writes this upstream's refusals.
    fn upstream_author(&self) -> Author {
        let county = tier_of(self.idx) == Tier::County;
        Author {
            account: "system".into(),
            name: if county {
                "县级平台"
            } else {
                "乡镇便民服务中心"
            }
            .into(),
            role: if county { "admin" } else { "agent" }.into(),
            tier: tier_of(self.idx),
            node: CODES[self.idx].into(),
        }
    }

    /// A person's action: stored and committed before it returns.
    fn write(&mut self, case_no: &str, doc: &mut AutoCommit) {
        self.mem.write(case_no, doc).unwrap();
    }

    fn case(&self, case_no: &str) -> Option<(AutoCommit, CaseDoc)> {
        let doc = self.mem.load(case_no).unwrap()?;
        let case = case::read_case(&doc).unwrap();
        Some((doc, case))
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Replica for CaseReplica {
    type Error = String;

    fn scope_roots(&self, within: &str) -> Result<Vec<(String, Fp)>, String> {
        self.mem.scope_roots(within).map_err(err)
    }
    fn node(&self, scope: &str, prefix: Prefix) -> Result<Fp, String> {
        self.mem.node(scope, prefix).map_err(err)
    }
    fn children(&self, scope: &str, prefix: Prefix) -> Result<Vec<Fp>, String> {
        self.mem.children(scope, prefix).map_err(err)
    }
    fn items(&self, scope: &str, prefix: Prefix) -> Result<Vec<(String, Digest)>, String> {
        self.mem.items(scope, prefix).map_err(err)
    }
    fn load(&self, case_no: &str) -> Result<Option<AutoCommit>, String> {
        self.mem.load(case_no).map_err(err)
    }

    fn store(&mut self, case_no: &str, doc: &mut AutoCommit) -> Result<(), String> {
        let Some(verdict) = self.verdicts.borrow_mut().remove(case_no) else {
            return self.mem.store(case_no, doc).map_err(err);
        };
        let mut merged = match self.mem.load(case_no).map_err(err)? {
            Some(mut current) => {
                current.merge(doc).map_err(err)?;
                current
            }
            None => doc.clone(),
        };
        merged.set_actor(actor(self.idx));
        if ingress::settle(&mut merged, &verdict, &self.upstream_author(), self.now)? {
            merged.commit();
        }
        self.mem.store(case_no, &mut merged).map_err(err)
    }

    fn commit(&mut self) -> Result<(), String> {
        self.mem.commit().map_err(err)
    }
    fn actor_allowed(&mut self, peer: &str, actor: &ActorId) -> Result<bool, String> {
        self.mem.actor_allowed(peer, actor).map_err(err)
    }

    fn check_change(
        &self,
        peer: &str,
        old: Option<&mut AutoCommit>,
        new: &mut AutoCommit,
    ) -> Result<Result<(), String>, String> {
        let case_no = match case::read_case(new) {
            Ok(c) => c.case_no,
            Err(e) => return Ok(Err(format!("not a valid case document: {e}"))),
        };
        let catalog = |version: u64| {
            (version == u64::from(self.catalog.version)).then(|| self.catalog.clone())
        };
        let actor_node = |a: &ActorId| self.mem.actor_node(a).map(str::to_string);
        let up = Upstream {
            author: self.upstream_author(),
            catalog: &catalog,
            actor_node: &actor_node,
            now: self.now,
        };
        match ingress::judge(old.as_deref(), new, peer, &up) {
            Ok(verdict) => {
                self.verdicts.borrow_mut().insert(case_no, verdict);
                Ok(Ok(()))
            }
            Err(reason) => Ok(Err(reason)),
        }
    }

    fn catalog_version(&self) -> Result<u32, String> {
        self.mem.catalog_version().map_err(err)
    }
    fn catalog_json(&self) -> Result<String, String> {
        self.mem.catalog_json().map_err(err)
    }
    fn set_catalog(&mut self, json: &str) -> Result<(), String> {
        self.mem.set_catalog(json).map_err(err)
    }
}

impl SimReplica for CaseReplica {
    fn crash(&mut self) {
        self.mem.crash();
        self.verdicts.borrow_mut().clear();
    }
    fn case_numbers(&self) -> Vec<String> {
        self.mem.case_numbers()
    }
    fn digest(&self, case_no: &str) -> Option<Digest> {
        self.mem.digest(case_no)
    }
}

/// An event the simulation wrote, by case number and event id.
type EventKey = (String, String);

/// The people at every tier, and what they wrote.
struct People {
    catalog: Catalog,
    calendar: Calendar,
    departments: Vec<String>,
    /// Items a villager's everyday request validates for (personal applicant, required materials).
    items: Vec<String>,
    /// The true time; each node's clock is off by its skew (minutes).
    clock: DateTime<FixedOffset>,
    skew: [i64; 7],
    next_seq: [u32; 7],
    /// Events people's actions wrote (and intakes), with their kind.
    honest: BTreeMap<EventKey, ActionKind>,
    /// Events written as a forged or broken node would.
    forged: BTreeMap<EventKey, ActionKind>,
    /// Actions taken, by kind: the simulation must reach deep into the workflow.
    taken: BTreeMap<&'static str, u32>,
}

fn request(catalog: &Catalog, item_code: &str) -> IntakeRequest {
    tongban_tests::villager_request(catalog.item(item_code).unwrap())
}

fn start() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-09-01T08:30:00+08:00").unwrap()
}

impl People {
    fn new(rng: &mut StdRng) -> People {
        let catalog = Catalog::builtin().unwrap();
        let day = start().date_naive();
        let items = catalog
            .items
            .iter()
            .filter(|i| case::validate_intake(&catalog, &request(&catalog, &i.code), day).is_ok())
            .map(|i| i.code.clone())
            .collect();
        let mut skew = [0i64; 7];
        for s in skew.iter_mut().skip(1) {
            *s = rng.gen_range(-120..=120);
        }
        People {
            departments: catalog
                .departments()
                .into_iter()
                .map(String::from)
                .collect(),
            calendar: Calendar::builtin().unwrap(),
            catalog,
            items,
            clock: start(),
            skew,
            next_seq: [1; 7],
            honest: BTreeMap::new(),
            forged: BTreeMap::new(),
            taken: BTreeMap::new(),
        }
    }

    fn local_time(&self, idx: usize) -> DateTime<FixedOffset> {
        self.clock + Duration::minutes(self.skew[idx])
    }

    /// One piece of work somewhere; time moves on.
    fn work(&mut self, replicas: &mut [CaseReplica], rng: &mut StdRng) {
        self.clock += Duration::minutes(rng.gen_range(1..40));
        for (idx, r) in replicas.iter_mut().enumerate() {
            r.now = self.local_time(idx);
        }
        // The county does most of the work on a case; villages take most cases in.
        let idx = match rng.gen_range(0..10) {
            0..=3 => HUB,
            4..=5 => rng.gen_range(1..3),
            _ => rng.gen_range(3..CODES.len()),
        };
        let cases = replicas[idx].case_numbers();
        match rng.gen_range(0..10) {
            0..=1 if idx != HUB => self.intake(replicas, idx, rng),
            2 if idx != HUB && !cases.is_empty() && rng.gen_bool(0.3) => {
                let no = cases[rng.gen_range(0..cases.len())].clone();
                self.forge(&mut replicas[idx], &no, rng);
            }
            _ if !cases.is_empty() => {
                let no = cases[rng.gen_range(0..cases.len())].clone();
                self.follow(&mut replicas[idx], &no, rng);
            }
            _ if idx != HUB => self.intake(replicas, idx, rng),
            _ => {}
        }
    }

    fn intake(&mut self, replicas: &mut [CaseReplica], idx: usize, rng: &mut StdRng) {
        // Fee-charging items are few in the catalogue; a quarter of the cases take one, so that
        // approvals with a fee and payments happen in every run.
        let charged: Vec<&String> = self
            .items
            .iter()
            .filter(|c| self.catalog.item(c).is_some_and(|i| i.fee.is_some()))
            .collect();
        let item = if !charged.is_empty() && rng.gen_bool(0.25) {
            charged[rng.gen_range(0..charged.len())]
        } else {
            &self.items[rng.gen_range(0..self.items.len())]
        };
        let now = self.local_time(idx);
        let intake: ValidIntake = case::validate_intake(
            &self.catalog,
            &request(&self.catalog, item),
            now.date_naive(),
        )
        .unwrap();
        let no = case::format_case_no(CODES[idx], now.date_naive(), self.next_seq[idx]);
        self.next_seq[idx] += 1;
        let (mut doc, _) = case::new_case_document(
            &intake,
            IntakeContext {
                case_no: &no,
                agent: Agent {
                    user: "daiban".into(),
                    name: "李代办".into(),
                    node_code: CODES[idx].into(),
                    node_name: format!("站点{}", CODES[idx]),
                },
                now,
                query_password: "482913",
                actor: actor(idx),
            },
        )
        .unwrap();
        replicas[idx].write(&no, &mut doc);
        self.honest
            .insert((no, case::INTAKE_EVENT_ID.into()), ActionKind::Intake);
    }

    /// The people at replica `idx` who could act on `case`: stored account role, acting role.
    fn people_at(idx: usize, case: &CaseDoc) -> Vec<(String, Role)> {
        match tier_of(idx) {
            Tier::Village => vec![("agent".into(), Role::Agent)],
            Tier::Township => vec![("agent".into(), Role::Township)],
            Tier::County => {
                let mut depts = vec![case.handling_dept().to_string()];
                depts.extend(case.item.assist_departments.iter().cloned());
                let mut people = vec![
                    ("window".into(), Role::Window),
                    ("supervisor".into(), Role::Supervisor),
                ];
                people.extend(
                    depts
                        .into_iter()
                        .map(|d| (format!("dept:{d}"), Role::Dept(d))),
                );
                people
            }
        }
    }

    fn inputs(&self, kind: ActionKind, case: &CaseDoc, rng: &mut StdRng) -> ActionInput {
        let mut input = ActionInput::new(kind);
        input.note = "意见：材料齐全，同意。".into();
        input.reason = "申请人反映情况属实，需要处理。".into();
        if !case.materials.is_empty() {
            let m = &case.materials[rng.gen_range(0..case.materials.len())];
            input.missing = vec![m.id.clone()];
        }
        input.materials = case.workflow.missing.clone();
        let others: Vec<&String> = self
            .departments
            .iter()
            .filter(|d| d.as_str() != case.handling_dept())
            .collect();
        input.dept = others[rng.gen_range(0..others.len())].clone();
        input.result_name = "结果证照".into();
        input.result_no = format!("No.{}", rng.gen::<u16>());
        input.score = Some(rng.gen_range(1..=5));
        // A bad review and a closed rectification say why; the handling department owns the fix
        // (so it may also appeal), and a review of an appeal goes either way.
        input.comment = "办事等了很久。".into();
        if kind == ActionKind::Supervise {
            input.dept = case.handling_dept().to_string();
        }
        input.overturn = rng.gen_bool(0.5);
        input.urgent = rng.gen_bool(0.2);
        input.phone = format!("139{:08}", rng.gen_range(0..100_000_000u32));
        // A fee set by a rule is typed at the approval; the window takes what is owed.
        input.fee_yuan = match kind {
            ActionKind::RecordPayment => {
                tongban_shared::manual::yuan_digits(case.workflow.fee_due_fen)
            }
            _ => "58".into(),
        };
        input.pay_method = "现金".into();
        input.pay_receipt = format!("FS-{}", rng.gen::<u16>());
        if kind == ActionKind::Answer {
            input.note = "可以办理，按清单准备材料。".into();
        }
        if kind == ActionKind::Ask {
            input.note = "申请人的情况是否符合条件？".into();
        }
        input
    }

    /// Someone at replica `idx` takes one of the actions their page offers on the case.
    fn follow(&mut self, replica: &mut CaseReplica, no: &str, rng: &mut StdRng) {
        let (mut doc, case) = replica.case(no).unwrap();
        doc.set_actor(actor(replica.idx));
        let mut offered: Vec<(String, Role, ActionKind)> = Vec::new();
        for (account, role) in People::people_at(replica.idx, &case) {
            let mut kinds = workflow::available(&case, &role);
            if fold::authorised(ActionKind::Amend, &role, &case).is_ok() {
                kinds.push(ActionKind::Amend);
            }
            offered.extend(
                kinds
                    .into_iter()
                    .map(|k| (account.clone(), role.clone(), k)),
            );
        }
        // People move cases on more often than they amend, complain or evaluate; and often they
        // look at a case and leave it as it is.
        let weight = |k: ActionKind| match k {
            ActionKind::Amend | ActionKind::Escalate | ActionKind::Evaluate => 1,
            // A question is asked now and then, not at every look at a case.
            ActionKind::Ask => 0,
            ActionKind::Reject | ActionKind::Deny => 2,
            // Rare paths (an appeal needs a bad review under rectification): taken when offered.
            ActionKind::Appeal | ActionKind::ReviewAppeal => 40,
            _ => 8,
        };
        let idle = 4;
        // One look in forty at a case asks the 中台 a question (when asking is offered there).
        let asking = offered.iter().find(|o| o.2 == ActionKind::Ask).cloned();
        let chosen = match asking {
            Some(ask) if rng.gen_ratio(1, 40) => Some(ask),
            _ => {
                let total: u32 = idle + offered.iter().map(|o| weight(o.2)).sum::<u32>();
                let mut pick = rng.gen_range(0..total);
                offered.into_iter().find(|o| {
                    let w = weight(o.2);
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
            }
        };
        let Some((account, role, kind)) = chosen else {
            return;
        };
        let mut input = self.inputs(kind, &case, rng);
        if let (ActionKind::Answer, Role::Dept(d)) = (kind, &role) {
            // A department answers what it was asked.
            input.target = case
                .workflow
                .questions
                .iter()
                .find(|q| q.is_open() && &q.dept == d)
                .map(|q| q.id.clone())
                .unwrap_or_default();
        }
        let id = event::event_id(rng.gen());
        let result = workflow::apply(
            &mut doc,
            &input,
            &Actor {
                user: "user",
                name: "经办人",
                role: &account,
                tier: tier_of(replica.idx),
                node: CODES[replica.idx],
            },
            &role,
            &Context {
                now: replica.now,
                calendar: &self.calendar,
                departments: self.departments.clone(),
                event_id: id.clone(),
                rectify_days: 5,
                item_fee: self
                    .catalog
                    .item(&case.item.code)
                    .and_then(|i| i.fee.clone()),
            },
        );
        match result {
            Ok(_) => {
                replica.write(no, &mut doc);
                self.honest.insert((no.to_string(), id), kind);
                *self.taken.entry(kind.as_str()).or_default() += 1;
            }
            // Amending is not offered by state (the page offers it while the case is open).
            Err(_) if kind == ActionKind::Amend => {}
            Err(e) => panic!(
                "{kind} offered to {role:?} on {no} ({}) and then refused: {e}",
                case.state
            ),
        }
    }

    /// A node writes an event it may not write, bypassing `workflow::apply`.
    fn forge(&mut self, replica: &mut CaseReplica, no: &str, rng: &mut StdRng) {
        let idx = replica.idx;
        let (mut doc, case) = replica.case(no).unwrap();
        doc.set_actor(actor(idx));
        let own = Author {
            account: "daiban".into(),
            name: "李代办".into(),
            role: "agent".into(),
            tier: tier_of(idx),
            node: CODES[idx].into(),
        };
        let (kind, by) = match rng.gen_range(0..4) {
            // A county-only kind in the node's own name.
            0 => (
                [ActionKind::Accept, ActionKind::Approve, ActionKind::Receive][rng.gen_range(0..3)],
                own,
            ),
            // A county account's name.
            1 => (
                ActionKind::Approve,
                Author {
                    account: "chuangkou".into(),
                    name: "窗口人员".into(),
                    role: "window".into(),
                    tier: Tier::County,
                    node: CODES[HUB].into(),
                },
            ),
            // Another village's name (a village only: a township may relay for its villages).
            2 if tier_of(idx) == Tier::Village => {
                let other = if idx % 2 == 1 { idx + 1 } else { idx - 1 };
                (
                    ActionKind::Escalate,
                    Author {
                        node: CODES[other].into(),
                        ..own
                    },
                )
            }
            // A village's name written with the township's own actor: a township relays its
            // villages' events with their actors and writes in their name only what it imports.
            2 if tier_of(idx) == Tier::Township => {
                let village = (0..CODES.len())
                    .find(|&v| PARENT[v] == Some(idx))
                    .expect("every township has villages");
                (
                    ActionKind::Escalate,
                    Author {
                        tier: Tier::Village,
                        node: CODES[village].into(),
                        ..own
                    },
                )
            }
            // 村级当场办结 of an item the catalogue keeps for the department.
            3 if tier_of(idx) == Tier::Village && !case.item.village_completable() => {
                (ActionKind::CompleteOnSite, own)
            }
            _ => return,
        };
        let events: Vec<Event> = event::read_events(&doc)
            .0
            .into_iter()
            .map(|s| s.event)
            .collect();
        let forged = Event {
            id: event::event_id(rng.gen()),
            kind,
            by,
            at: replica
                .now
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            saw: case.state.clone(),
            after: event::frontier(&events),
            input: Inputs {
                reason: "伪造".into(),
                result_name: "结果".into(),
                ..Default::default()
            },
        };
        event::write_event(&mut doc, &forged).unwrap();
        doc.commit();
        replica.write(no, &mut doc);
        self.forged.insert((no.to_string(), forged.id), kind);
    }
}

/// The events of a case (id → stored JSON) and the case they derive.
fn events_and_case(r: &CaseReplica, no: &str) -> (BTreeMap<String, String>, CaseDoc) {
    let (doc, case) = r.case(no).unwrap();
    let raw = event::read_events(&doc)
        .0
        .into_iter()
        .map(|s| (s.event.id, s.raw))
        .collect();
    (raw, case)
}

fn check(net: &Net<CaseReplica>, people: &People, seed: u64) {
    net.check_replicas_agree(seed);
    let hub = &net.replicas[HUB];
    let mut refusals: BTreeMap<EventKey, u32> = BTreeMap::new();
    let mut at_hub: BTreeSet<EventKey> = BTreeSet::new();
    for no in hub.case_numbers() {
        let (events, case) = events_and_case(hub, &no);
        for (idx, r) in net.replicas.iter().enumerate() {
            if idx != HUB && holds(idx, &no) {
                let (theirs, their_case) = events_and_case(r, &no);
                assert_eq!(
                    theirs, events,
                    "seed {seed}: {no}: events differ at {}",
                    CODES[idx]
                );
                assert_eq!(
                    their_case, case,
                    "seed {seed}: {no}: case differs at {}",
                    CODES[idx]
                );
            }
        }
        for raw in events.values() {
            let e: Event = serde_json::from_str(raw).unwrap();
            if e.kind == ActionKind::Refuse {
                *refusals.entry((no.clone(), e.input.target)).or_default() += 1;
            }
        }
        for h in &case.history {
            let kind = ActionKind::parse(&h.action).unwrap();
            assert!(
                !h.effective || h.tier == "county" || kind.by_node() || kind == ActionKind::Refuse,
                "seed {seed}: {no}: a node's {kind} took effect: {h:?}"
            );
        }
        at_hub.extend(events.into_keys().map(|id| (no.clone(), id)));
    }
    for (key, kind) in &people.honest {
        assert!(
            at_hub.contains(key),
            "seed {seed}: {kind} {key:?} acknowledged, lost"
        );
        assert!(
            !refusals.contains_key(key),
            "seed {seed}: an entitled {kind} {key:?} was refused"
        );
    }
    for (key, kind) in &people.forged {
        assert!(
            at_hub.contains(key),
            "seed {seed}: forged {kind} {key:?} lost"
        );
        assert_eq!(
            refusals.get(key),
            Some(&1),
            "seed {seed}: forged {kind} {key:?} not refused exactly once: {:#?}",
            events_and_case(hub, &key.0).1.history
        );
        let (_, case) = events_and_case(hub, &key.0);
        let entry = case.history.iter().find(|h| h.id == key.1).unwrap();
        assert!(
            !entry.effective && entry.refused,
            "seed {seed}: forged {kind} {key:?} took effect"
        );
    }
    for (key, n) in &refusals {
        assert_eq!(*n, 1, "seed {seed}: {key:?} refused {n} times");
    }
}

fn run_seed(seed: u64) -> People {
    let mut rng = StdRng::seed_from_u64(seed);
    let catalog = Catalog::builtin().unwrap();
    let mut replicas: Vec<CaseReplica> = (0..CODES.len())
        .map(|idx| CaseReplica {
            mem: MemReplica::default(),
            idx,
            now: start(),
            catalog: catalog.clone(),
            verdicts: RefCell::new(BTreeMap::new()),
        })
        .collect();
    // Enrolment binds each node's actor to it at every upstream that will see it.
    for (idx, code) in CODES.iter().enumerate() {
        for r in replicas.iter_mut() {
            r.mem.bind_actor(&actor(idx), code);
        }
    }
    let mut net = Net {
        replicas,
        cut: [false; 7],
    };
    let mut people = People::new(&mut rng);
    let steps = rng.gen_range(80..200);
    net.run(&mut rng, steps, |replicas, rng| people.work(replicas, rng));
    net.heal(seed);
    check(&net, &people, seed);
    people
}

#[test]
fn workflow_actions_at_three_tiers_converge_and_forgeries_are_refused_once() {
    let taken = RefCell::new(BTreeMap::<&'static str, u32>::new());
    let forged = RefCell::new(0usize);
    let seeds = RefCell::new(0u32);
    run_seeds("workflow actions", 1000, |seed| {
        let people = run_seed(seed);
        for (k, n) in people.taken {
            *taken.borrow_mut().entry(k).or_default() += n;
        }
        *forged.borrow_mut() += people.forged.len();
        *seeds.borrow_mut() += 1;
    });
    let taken = taken.into_inner();
    eprintln!(
        "actions taken: {taken:?}; forged events: {}",
        forged.borrow()
    );
    // A simulation that never gets a case through the back office proves little.
    if seeds.into_inner() >= 100 {
        for kind in ActionKind::ALL {
            if !matches!(kind, ActionKind::Intake | ActionKind::Refuse) {
                assert!(
                    taken.contains_key(kind.as_str()),
                    "no {kind} was ever taken"
                );
            }
        }
    }
}
