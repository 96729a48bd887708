//! Sample cases in several states, reached through the real workflow and the real sync: every step is
//! a `POST /api/cases/{no}/actions` at the server where that person works (township clerk, county
//! window or department, village agent), so `tongban_shared::workflow` decides each state, and every
//! copy travels by `POST /api/sync/now` — the villages behind the township through its relay.
//!
//! Re-running is harmless: a case's next steps are taken only while its history is still a prefix of
//! its plan, so a reused directory is not advanced twice and a case someone moved by hand is left alone.

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tongban_shared::catalog::Catalog;

use crate::api::{Case, Server};
use crate::county::{self, County, Login, Node};

/// Who takes a step, which decides the server it is taken at and the account used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Desk {
    /// The township clerk, at the township node, as the file passes on its way to the county.
    Township,
    /// The county front desk (受理岗).
    Window,
    /// The back office of the case's department.
    Dept,
    /// The village agent, at the village node, handing the result back.
    Agent,
    /// A 联办 item's assisting department (its index in the item's list).
    Assist(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    action: &'static str,
    desk: Desk,
}

const fn step(action: &'static str, desk: Desk) -> Step {
    Step { action, desk }
}

const RECEIVE: Step = step("receive", Desk::Window);
const ACCEPT: Step = step("accept", Desk::Window);
const APPROVE: Step = step("approve", Desk::Dept);
const ISSUE: Step = step("issue_result", Desk::Dept);
const DELIVER: Step = step("deliver", Desk::Agent);

/// Plans for a village's cases, oldest first; cases past the last plan stay as the agent filed them.
/// Together they show the county every stage of a case's life: waiting at the front desk, received,
/// accepted, sent back for correction, rejected, result ready, delivered, evaluated.
const PLANS: [&[Step]; 8] = [
    &[],
    &[RECEIVE],
    &[RECEIVE, ACCEPT],
    &[RECEIVE, step("request_correction", Desk::Window)],
    &[RECEIVE, step("reject", Desk::Window)],
    &[RECEIVE, ACCEPT, APPROVE, ISSUE],
    &[RECEIVE, ACCEPT, APPROVE, ISSUE, DELIVER],
    &[
        RECEIVE,
        ACCEPT,
        APPROVE,
        ISSUE,
        DELIVER,
        step("evaluate", Desk::Agent),
    ],
];

/// A plan as `item` needs it: a 上报 item is reported up with the department's 初审意见 before the
/// decision, a 联办 item gets each assisting department's opinion first, and a fee is paid at the
/// window before the result is issued.
fn for_item(plan: &[Step], item: &tongban_shared::catalog::Item) -> Vec<Step> {
    use tongban_shared::catalog::ItemKind;
    let mut out = Vec::new();
    for s in plan {
        if *s == ISSUE && item.fee.is_some() {
            out.push(step("record_payment", Desk::Window));
        }
        if *s == APPROVE {
            match item.kind {
                ItemKind::ReportUp => out.push(step("report_up", Desk::Dept)),
                ItemKind::Joint => {
                    for i in 0..item.assist_departments.len() {
                        out.push(step("assist_opinion", Desk::Assist(i as u8)));
                    }
                }
                _ => {}
            }
        }
        out.push(*s);
    }
    out
}

/// How long a server may take to answer its first health check after the start.
const UP_WITHIN: Duration = Duration::from_secs(30);

/// One planned case: whose it is and what is to happen to it.
struct Planned {
    village: usize,
    case_no: String,
    item_code: String,
    steps: Vec<Step>,
}

/// The action body a step sends. Notes and reasons read like a real file, marked as demo data.
fn input(step: Step, case: &Planned, catalog: &Catalog) -> anyhow::Result<Value> {
    let item = catalog
        .items
        .iter()
        .find(|i| i.code == case.item_code)
        .with_context(|| {
            format!(
                "item {} of {} is not in the catalogue",
                case.item_code, case.case_no
            )
        })?;
    Ok(match step.action {
        "township_receive" => {
            json!({"action": step.action, "note": "纸质材料已到乡镇，转报县级（演示）"})
        }
        "receive" => json!({"action": step.action, "note": "纸质材料已到县政务服务中心（演示）"}),
        "accept" => json!({"action": step.action, "note": "材料齐全，予以受理（演示）"}),
        "request_correction" => {
            let first = item
                .materials
                .first()
                .with_context(|| format!("item {} lists no materials", item.code))?;
            json!({"action": step.action, "missing": [first.id], "note": "请代办员收齐后补交（演示）"})
        }
        "reject" => json!({
            "action": step.action,
            "reason": "申请人不符合该事项的申请条件（演示数据）",
        }),
        "approve" => json!({
            "action": step.action,
            "note": "经审查符合条件，准予办理（演示）",
            "fee_yuan": demo_fee_typed(item),
        }),
        "record_payment" => json!({
            "action": step.action,
            "fee_yuan": demo_fee(item),
            "pay_method": "微信",
            "pay_receipt": format!("FS演示{}", case.case_no),
        }),
        "report_up" => json!({
            "action": step.action,
            "note": format!("经初审符合条件，报{}审批（演示）", item.higher_authority),
        }),
        "assist_opinion" => json!({"action": step.action, "note": "经核查，同意办理（演示）"}),
        "issue_result" => json!({
            "action": step.action,
            "result_name": format!("{}办理结果", item.name),
            "result_no": format!("阳政通{}", case.case_no),
        }),
        "deliver" => json!({"action": step.action, "note": "代办员送达申请人本人（演示）"}),
        "evaluate" => {
            json!({"action": step.action, "score": 5, "comment": "代办员送上门，不用跑县城"})
        }
        other => json!({"action": other}),
    })
}

/// What the approver types for a fee set by a rule (a fixed fee comes from the catalogue).
const DEMO_RULE_FEE: &str = "58.00";

fn demo_fee_typed(item: &tongban_shared::catalog::Item) -> &'static str {
    match &item.fee {
        Some(f) if f.amount_fen == 0 => DEMO_RULE_FEE,
        _ => "",
    }
}

/// The amount the demo's applicant pays, in yuan.
fn demo_fee(item: &tongban_shared::catalog::Item) -> String {
    match &item.fee {
        Some(f) if f.amount_fen > 0 => tongban_shared::manual::yuan_digits(f.amount_fen),
        _ => DEMO_RULE_FEE.to_string(),
    }
}

/// Where the demo's steps happen, in the order a file travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Township,
    County,
    Village,
}

fn place(desk: Desk) -> Place {
    match desk {
        Desk::Township => Place::Township,
        Desk::Window | Desk::Dept | Desk::Assist(_) => Place::County,
        Desk::Agent => Place::Village,
    }
}

struct Seeder<'a> {
    county: &'a County,
    catalog: &'a Catalog,
    /// (account, department) of the county's back office.
    depts: Vec<(String, String)>,
    hub: Server,
    township: Server,
    villages: Vec<Server>,
}

/// Waits for every server, then takes the sample cases through their plans. Blocking: run it off the
/// async workers.
pub fn run(county: &County, catalog: &Catalog) -> anyhow::Result<()> {
    let s = Seeder {
        county,
        catalog,
        depts: county::dept_accounts(catalog),
        hub: Server::new(county.hub_http),
        township: Server::new(county.township.http),
        villages: county
            .villages
            .iter()
            .map(|v| Server::new(v.http))
            .collect(),
    };
    s.hub.wait_healthy("hub", UP_WITHIN)?;
    s.township.wait_healthy("township", UP_WITHIN)?;
    for v in &s.villages {
        v.wait_healthy("village", UP_WITHIN)?;
    }
    let planned = s.plan()?;

    // Up: the villages' intake reaches the township (or, for the direct village, the county).
    s.sync_villages()?;
    s.advance(&planned, Place::Township)?;
    s.sync(&s.township, &county.township)?;
    s.advance(&planned, Place::County)?;
    // Down: the county's decisions reach the villages through the township relay.
    s.sync(&s.township, &county.township)?;
    s.sync_villages()?;
    s.advance(&planned, Place::Village)?;
    // Up again: deliveries and evaluations reach the county.
    s.sync_villages()?;
    s.sync(&s.township, &county.township)?;
    Ok(())
}

impl Seeder<'_> {
    /// A plan for each village's oldest cases (the generated ones, so new cases are never planned).
    fn plan(&self) -> anyhow::Result<Vec<Planned>> {
        let mut out = Vec::new();
        for (i, (node, server)) in self.county.villages.iter().zip(&self.villages).enumerate() {
            let mut cases: Vec<Case> = server.cases(node.login)?;
            cases.sort_by(|a, b| (&a.created_at, &a.case_no).cmp(&(&b.created_at, &b.case_no)));
            for (case, plan) in cases.into_iter().zip(PLANS) {
                let mut steps = Vec::new();
                if node.via_township {
                    steps.push(step("township_receive", Desk::Township));
                }
                let item = self
                    .catalog
                    .item(&case.item_code)
                    .with_context(|| format!("item {} is not in the catalogue", case.item_code))?;
                steps.extend(for_item(plan, item));
                out.push(Planned {
                    village: i,
                    case_no: case.case_no,
                    item_code: case.item_code,
                    steps,
                });
            }
        }
        Ok(out)
    }

    fn sync(&self, server: &Server, node: &Node) -> anyhow::Result<()> {
        server
            .sync_now(node.login)
            .with_context(|| format!("syncing {} {}", node.code, node.name))
    }

    fn sync_villages(&self) -> anyhow::Result<()> {
        for (node, server) in self.county.villages.iter().zip(&self.villages) {
            self.sync(server, node)?;
        }
        Ok(())
    }

    /// Takes, at `at`, each planned case's next steps that belong there.
    fn advance(&self, planned: &[Planned], at: Place) -> anyhow::Result<()> {
        for case in planned {
            let village = &self.county.villages[case.village];
            let (server, reader) = match at {
                Place::Township => (&self.township, self.county.township.login),
                Place::County => (&self.hub, county::ADMIN),
                Place::Village => (&self.villages[case.village], village.login),
            };
            if at == Place::Township && !village.via_township {
                continue;
            }
            let held = server.case(reader, &case.case_no)?;
            let done: Vec<&str> = held
                .history
                .iter()
                .map(|h| h.action.as_str())
                .filter(|a| *a != "intake")
                .collect();
            let on_plan = done.len() <= case.steps.len()
                && done.iter().zip(&case.steps).all(|(d, s)| *d == s.action);
            if !on_plan {
                tracing::info!(case_no = %case.case_no, state = %held.state, "moved by hand; left as it is");
                continue;
            }
            for &next in case.steps[done.len()..]
                .iter()
                .take_while(|s| place(s.desk) == at)
            {
                let login = self.login_for(next.desk, case, village)?;
                server.act(login, &case.case_no, &input(next, case, self.catalog)?)?;
            }
        }
        Ok(())
    }

    fn login_for<'s>(
        &'s self,
        desk: Desk,
        case: &Planned,
        village: &Node,
    ) -> anyhow::Result<Login<'s>> {
        Ok(match desk {
            Desk::Township => self.county.township.login,
            Desk::Window => county::WINDOW,
            Desk::Agent => village.login,
            Desk::Dept | Desk::Assist(_) => {
                let item = self
                    .catalog
                    .item(&case.item_code)
                    .with_context(|| format!("item {} is not in the catalogue", case.item_code))?;
                let dept = match desk {
                    Desk::Assist(i) => item
                        .assist_departments
                        .get(usize::from(i))
                        .map(String::as_str)
                        .with_context(|| {
                            format!("item {} has no assisting department {i}", item.code)
                        })?,
                    _ => item.department.as_str(),
                };
                let account = self
                    .depts
                    .iter()
                    .find(|(_, d)| d == dept)
                    .with_context(|| format!("no department account for {dept}"))?;
                Login {
                    user: &account.0,
                    password: county::DEPT_PASSWORD,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongban_shared::calendar::Calendar;
    use tongban_shared::case::{self, Agent, IntakeContext};
    use tongban_shared::workflow::{self, ActionInput, Actor, Role};
    use tongban_shared::Tier;

    fn role(
        desk: Desk,
        item: &tongban_shared::catalog::Item,
    ) -> (Role, String, Tier, &'static str) {
        match desk {
            Desk::Township => (Role::Township, "agent".into(), Tier::Township, "420222100"),
            Desk::Window => (Role::Window, "window".into(), Tier::County, "420222"),
            Desk::Dept => (
                Role::Dept(item.department.clone()),
                format!("dept:{}", item.department),
                Tier::County,
                "420222",
            ),
            Desk::Assist(i) => {
                let d = item.assist_departments[usize::from(i)].clone();
                (
                    Role::Dept(d.clone()),
                    format!("dept:{d}"),
                    Tier::County,
                    "420222",
                )
            }
            Desk::Agent => (Role::Agent, "agent".into(), Tier::Village, "420222100201"),
        }
    }

    #[test]
    fn every_plan_with_its_inputs_is_a_path_the_workflow_allows_for_every_item() {
        use rand::SeedableRng;
        let catalog = Catalog::builtin().unwrap();
        let calendar = Calendar::builtin().unwrap();
        let now = tongban_runtime::clock::beijing_now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for item in &catalog.items {
            for (via_township, plan) in [false, true]
                .into_iter()
                .flat_map(|v| PLANS.map(|p| (v, p)))
            {
                let mut req = tongban_node::demo_data::sample_intake(&catalog, &mut rng);
                req.item_code = item.code.clone();
                req.materials = item
                    .materials
                    .iter()
                    .filter(|m| m.required)
                    .map(|m| m.id.clone())
                    .collect();
                let intake = case::validate_intake(&catalog, &req, now.date_naive()).unwrap();
                let case_no = case::format_case_no("420222100201", now.date_naive(), 1);
                let (mut doc, _) = case::new_case_document(
                    &intake,
                    IntakeContext {
                        case_no: &case_no,
                        agent: Agent {
                            user: "daiban1".into(),
                            name: "代办员".into(),
                            node_code: "420222100201".into(),
                            node_name: "示范村".into(),
                        },
                        now,
                        query_password: "123456",
                        actor: automerge::ActorId::random(),
                    },
                )
                .unwrap();
                let planned = Planned {
                    village: 0,
                    case_no: case_no.clone(),
                    item_code: item.code.clone(),
                    steps: via_township
                        .then_some(step("township_receive", Desk::Township))
                        .into_iter()
                        .chain(for_item(plan, item))
                        .collect(),
                };
                for (n, s) in planned.steps.iter().enumerate() {
                    let body = input(*s, &planned, &catalog).unwrap();
                    let action: ActionInput = serde_json::from_value(body).unwrap();
                    let (role, stored, tier, node) = role(s.desk, item);
                    let by = Actor {
                        user: "u",
                        name: "U",
                        role: &stored,
                        tier,
                        node,
                    };
                    let ctx = workflow::Context {
                        now,
                        calendar: &calendar,
                        departments: catalog
                            .departments()
                            .into_iter()
                            .map(String::from)
                            .collect(),
                        event_id: format!("e{n}"),
                        rectify_days: catalog.county.rectify_days,
                        item_fee: item.fee.clone(),
                    };
                    workflow::apply(&mut doc, &action, &by, &role, &ctx)
                        .unwrap_or_else(|e| panic!("{} {}: {e}", item.code, s.action));
                }
            }
        }
    }

    #[test]
    fn steps_run_in_the_order_a_file_travels() {
        // Township, then county, then village: the fixed order of `run`'s phases.
        for plan in PLANS {
            let places: Vec<Place> = plan.iter().map(|s| place(s.desk)).collect();
            assert!(places.windows(2).all(|w| w[0] <= w[1]), "{plan:?}");
        }
        assert!(PLANS.len() as u64 <= county::CASES_PER_VILLAGE);
    }
}
