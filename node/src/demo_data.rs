//! Generated cases: demo data for `tongban-node demo` and the demo county, and the benchmarks' fill.
//! Seeded, so the same seed gives the same cases.

use chrono::{DateTime, Duration, FixedOffset};
use rand::{Rng, SeedableRng};
use tongban_runtime::store::{Created, Store};
use tongban_shared::case::{self, Agent, ApplicantInput, IntakeRequest};
use tongban_shared::catalog::Catalog;
use tongban_shared::validate;

use crate::setup::SetupError;

const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
];
const GIVEN: [&str; 12] = [
    "秀英", "桂兰", "建国", "志强", "玉珍", "德明", "春花", "国华", "丽娟", "长青", "金凤", "家旺",
];

/// A plausible intake for item `n` of the catalogue, with a valid ID number born in the given year range.
pub fn sample_intake(catalog: &Catalog, rng: &mut impl Rng) -> IntakeRequest {
    let item = &catalog.items[rng.gen_range(0..catalog.items.len())];
    let year = rng.gen_range(1940..2005);
    let first17 = format!(
        "420222{year}{:02}{:02}{:03}",
        rng.gen_range(1..=12),
        rng.gen_range(1..=28),
        rng.gen_range(0..1000)
    );
    IntakeRequest {
        item_code: item.code.clone(),
        applicant: ApplicantInput {
            kind: "1".into(),
            name: format!(
                "{}{}",
                SURNAMES[rng.gen_range(0..SURNAMES.len())],
                GIVEN[rng.gen_range(0..GIVEN.len())]
            ),
            id_number: validate::id_with_check_char(&first17).unwrap_or_default(),
            phone: format!("13{:09}", rng.gen_range(0..1_000_000_000u32)),
            ..Default::default()
        },
        materials: item
            .materials
            .iter()
            .filter(|m| m.required || rng.gen_bool(0.5))
            .map(|m| m.id.clone())
            .collect(),
        delivery: "代办员送达".into(),
        note: String::new(),
    }
}

/// Stores `count` generated cases spread over the days before `now`, flushing once at the end.
/// For demo data and benchmarks; seeded, so the same seed gives the same county. With `villages`
/// above 0 the cases carry the numbers of that many villages (of 20 townships), as a county hub
/// holds them; otherwise this node's own.
pub fn fill(
    store: &Store,
    count: u64,
    seed: u64,
    now: DateTime<FixedOffset>,
    agent_user: &str,
    villages: u32,
) -> Result<u64, SetupError> {
    let identity = store.identity()?;
    let catalog = store.catalog()?;
    let actor = automerge::ActorId::from(store.actor()?);
    let agent = store
        .user(agent_user)?
        .ok_or_else(|| SetupError::Invalid(format!("no account {agent_user}")))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut stored = 0;
    for i in 0..count {
        // Newest last; at most ~one case every few minutes back in time.
        let at = now - Duration::seconds(((count - i) * 217) as i64);
        let req = sample_intake(&catalog, &mut rng);
        let intake = case::validate_intake(&catalog, &req, at.date_naive())
            .map_err(|e| SetupError::Invalid(format!("generated case invalid: {e:?}")))?;
        let password = format!("{:06}", rng.gen_range(0..1_000_000));
        let day = at.format("%Y%m%d").to_string();
        let created = store.create_case_unflushed(&day, |seq| {
            let agent = Agent {
                user: agent.name.clone(),
                name: agent.display_name.clone(),
                node_code: match villages {
                    0 => identity.code.clone(),
                    n => {
                        let v = (i % u64::from(n)) as u32;
                        format!("420222{:03}{:03}", 100 + v % 20, 200 + v / 20)
                    }
                },
                node_name: identity.name.clone(),
            };
            case::build_case(&intake, agent, at, seq, &password, actor.clone()).map_err(Box::new)
        })?;
        match created {
            Ok(Created::New(_)) => stored += 1,
            Ok(Created::Replayed(_)) => {}
            Err(e) => return Err(SetupError::Invalid(e.to_string())),
        }
    }
    store.flush()?;
    Ok(stored)
}
