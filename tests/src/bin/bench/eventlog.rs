//! `eventlog --cases 100000`: what the event log costs.
//!
//! - **migration**: a hub store of format 2 (history lists, as the release before the event log
//!   wrote them) with `--cases` cases is opened by this release, which converts every case into
//!   events. The documents are the committed fixture's (tests/fixtures/format2/hub, written by the
//!   previous release, 12 cases in every state it had), copied under new case numbers; the store is
//!   then marked format 2 by its version key, as that release left it.
//! - **fold**: deriving a case from its events, for cases of 10 to 400 events (the figure is
//!   50): the fold alone, and reading the case out of a loaded document (`case::read_case`: the
//!   fixed fields and the events out of automerge, then the fold). Linear in the number of events.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc};
use chrono::DateTime;
use tongban_runtime::store::{NodeIdentity, Store};
use tongban_shared::calendar::Calendar;
use tongban_shared::case;
use tongban_shared::catalog::Catalog;
use tongban_shared::fold;
use tongban_shared::workflow::{self, ActionInput, ActionKind, Actor, Context, Role};
use tongban_shared::Tier;

use crate::Table;

pub fn run() -> anyhow::Result<()> {
    let cases: u64 = crate::flag("--cases", "100000")?;
    let mut table = Table::new(&["measurement", "result"]);

    let dir = tempfile::tempdir()?;
    let store_dir = dir.path().join("hub");
    let written = Instant::now();
    format2_store(&store_dir, cases)?;
    let fill_s = written.elapsed().as_secs_f64();
    let opened = Instant::now();
    let store = Store::open(&store_dir)?;
    let migrate_s = opened.elapsed().as_secs_f64();
    let converted = store.count(None)?;
    let sample = store
        .document("420222103201-20261102-0007")?
        .context("sample case missing")?;
    let events = tongban_shared::event::read_events(&AutoCommit::load(&sample)?)
        .0
        .len();
    anyhow::ensure!(converted == cases, "{converted} cases after migration");
    anyhow::ensure!(events > 0, "the sample case has no events after migration");
    table.row([
        format!("format-2 store of {cases} cases written (setup)"),
        format!("{fill_s:.1} s"),
    ]);
    table.row([
        format!("migration to events, {cases} cases (open → serving)"),
        format!("{migrate_s:.1} s ({:.0} cases/s)", cases as f64 / migrate_s),
    ]);
    drop(store);

    for n in [10usize, 50, 100, 200, 400] {
        let mut doc = case_with_events(n)?;
        let (base, evs) = case::read_parts(&doc)?;
        anyhow::ensure!(evs.len() == n, "{} events instead of {n}", evs.len());
        let rounds = (20_000 / n).max(50) as u32;
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(fold::fold(base.clone(), &evs));
        }
        let fold_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(case::read_case(&doc)?);
        }
        let read_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        let bytes = doc.save().len();
        table.row([
            format!("case of {n} events ({bytes} B saved)"),
            format!(
                "fold {fold_us:.0} µs ({:.2} µs/event); read_case {read_us:.0} µs",
                fold_us / n as f64
            ),
        ]);
    }
    table.print();
    Ok(())
}

/// A store written the way the previous release left one: format-2 documents, version key 2.
fn format2_store(dir: &Path, cases: u64) -> anyhow::Result<()> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format2/hub");
    let templates: Vec<Vec<u8>> = {
        let copy = tempfile::tempdir()?;
        copy_dir(&fixture, copy.path())?;
        // Opening converts it: read the documents with sled directly instead.
        let db = sled::open(copy.path().join("db"))?;
        let tree = db.open_tree("cases")?;
        tree.iter()
            .values()
            .map(|v| v.map(|v| v.to_vec()))
            .collect::<Result<_, _>>()?
    };
    anyhow::ensure!(!templates.is_empty(), "the fixture holds no cases");
    for t in &templates {
        anyhow::ensure!(
            !tongban_shared::ingress::has_events(&AutoCommit::load(t)?),
            "fixture documents must be format 2"
        );
    }
    let identity = NodeIdentity {
        code: "420222".into(),
        name: "阳新县政务服务中心".into(),
        tier: Tier::County,
        parent: None,
        upstream: None,
        upstream_name: None,
        fallback: None,
        created_at: "2026-11-01T09:00:00+08:00".into(),
    };
    {
        let store = Store::create(
            dir,
            &identity,
            &[0x22; 16],
            tongban_shared::catalog::BUILTIN_CATALOG_JSON,
        )?;
        for i in 0..cases {
            let template = &templates[i as usize % templates.len()];
            // The fixture's numbers first (so the sample is one of them), then new ones, 4 000 a day.
            let no = if (i as usize) < templates.len() {
                format!("420222103201-20261102-{:04}", i + 1)
            } else {
                format!("420222103201-202612{:02}-{:04}", 1 + i / 4000, 1 + i % 4000)
            };
            let mut doc = AutoCommit::load(template)?;
            if doc.get(automerge::ROOT, "case_no")?.is_none() {
                anyhow::bail!("fixture document without a case number");
            }
            doc.put(automerge::ROOT, "case_no", no.as_str())?;
            doc.commit();
            let summary = case::read_case(&doc)?.summary();
            store
                .merge_case_from_upstream(&no, |_| Ok::<_, ()>((doc.save(), summary)))?
                .map_err(|()| anyhow::anyhow!("merge"))?;
        }
        store.flush()?;
    }
    // The previous release's version key.
    let db = sled::open(dir.join("db"))?;
    db.open_tree("meta")?
        .insert(b"store_version", &2u32.to_be_bytes())?;
    db.flush()?;
    Ok(())
}

/// A case of `n` events, written through `workflow::apply` as the tiers would: intake, the county's
/// receipt and acceptance, the department's sign-in, then suspensions and resumptions by the
/// department and escalations from the village, alternating.
fn case_with_events(n: usize) -> anyhow::Result<AutoCommit> {
    let catalog = Catalog::builtin()?;
    let item = catalog
        .items
        .iter()
        .find(|i| i.kind == tongban_shared::catalog::ItemKind::Promised)
        .context("no 承诺 item")?;
    let req = tongban_tests::villager_request(item);
    let t0 = DateTime::parse_from_rfc3339("2026-09-01T09:00:00+08:00")?;
    let intake = case::validate_intake(&catalog, &req, t0.date_naive())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (mut doc, _) = case::new_case_document(
        &intake,
        case::IntakeContext {
            case_no: "420222103201-20260901-0001",
            agent: case::Agent {
                user: "daiban".into(),
                name: "李代办".into(),
                node_code: "420222103201".into(),
                node_name: "某村".into(),
            },
            now: t0,
            query_password: "482913",
            actor: automerge::ActorId::from([7u8; 16].as_slice()),
        },
    )?;
    let calendar = Calendar::builtin()?;
    let dept = Role::Dept(item.department.clone());
    let dept_account = format!("dept:{}", item.department);
    let mut step = 0u64;
    let mut act = |doc: &mut AutoCommit, kind: ActionKind, role: &Role| -> anyhow::Result<()> {
        step += 1;
        let mut input = ActionInput::new(kind);
        input.reason = "理由".into();
        let (account, tier, node) = match role {
            Role::Agent => ("agent", Tier::Village, "420222103201"),
            Role::Window => ("window", Tier::County, "420222"),
            _ => (dept_account.as_str(), Tier::County, "420222"),
        };
        workflow::apply(
            doc,
            &input,
            &Actor {
                user: "u",
                name: "U",
                role: account,
                tier,
                node,
            },
            role,
            &Context {
                now: t0 + chrono::Duration::minutes(step as i64 * 7),
                calendar: &calendar,
                departments: Vec::new(),
                event_id: tongban_shared::event::event_id(step),
                rectify_days: 5,
                item_fee: None,
            },
        )
        .map_err(|e| anyhow::anyhow!("{kind}: {e}"))?;
        Ok(())
    };
    act(&mut doc, ActionKind::Receive, &Role::Window)?;
    act(&mut doc, ActionKind::Accept, &Role::Window)?;
    act(&mut doc, ActionKind::DeptReceive, &dept)?;
    let mut suspended = false;
    let mut count = 4;
    while count < n {
        if count % 2 == 0 {
            let kind = if suspended {
                ActionKind::Resume
            } else {
                ActionKind::Suspend
            };
            act(&mut doc, kind, &dept)?;
            suspended = !suspended;
        } else {
            act(&mut doc, ActionKind::Escalate, &Role::Agent)?;
        }
        count += 1;
    }
    Ok(doc)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
