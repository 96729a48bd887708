//! Who may see and do what with cases: the one table of roles per tier (least privilege, 等保
//! 访问控制), and the masking of personal data for everyone the table does not let see it in full.
//!
//! Workflow actions have their own rules (`tongban_shared::workflow`); this covers filing, lists,
//! reading a case and its raw document, and which cases a county department sees at all.

use tongban_shared::case::{CaseDoc, CaseSummary};
use tongban_shared::catalog::Item;
use tongban_shared::Tier;

use crate::error::AppError;
use crate::extract::CurrentUser;

/// What a request wants to do with cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// File a new case (intake).
    File,
    /// List cases and read a case page, with ID number and phone masked.
    Read,
    /// See the applicant's full ID number, phone, address and query password (audit-logged).
    FullPersonalData,
    /// Download a case's raw document (it holds everything).
    Document,
}

/// The table. At a node every account is the station's own staff (agent or head) and handles its
/// villagers' cases in full. At the county: the window files and handles every case; a department
/// reads only the cases it handles (see [`dept_scope`]) and sees their personal data; the supervisor
/// reads every case and sees the phone it calls back on, but not the ID number; the admin runs the
/// system and sees cases masked only.
pub const COUNTY_ROLES: &[(&str, &[Capability])] = &[
    (
        "window",
        &[
            Capability::File,
            Capability::Read,
            Capability::FullPersonalData,
            Capability::Document,
        ],
    ),
    (
        "dept",
        &[
            Capability::Read,
            Capability::FullPersonalData,
            Capability::Document,
        ],
    ),
    ("supervisor", &[Capability::Read]),
    ("admin", &[Capability::Read]),
];

/// The role name the table knows an account by (`dept:民政` is `dept`).
fn base_role(role: &str) -> &str {
    role.split(':').next().unwrap_or(role)
}

pub fn may(tier: Tier, role: &str, capability: Capability) -> bool {
    if tier != Tier::County {
        return matches!(base_role(role), "agent" | "head");
    }
    COUNTY_ROLES
        .iter()
        .find(|(name, _)| *name == base_role(role))
        .is_some_and(|(_, caps)| caps.contains(&capability))
}

/// The county's own endpoints (beyond cases, whose rules are [`COUNTY_ROLES`]) and the account
/// roles that may use each: the one place that says so. docs/SECURITY.md lists the same table (a
/// test keeps them equal). Accounts and the audit log are the tier's manager's ([`manager_role`]).
pub const COUNTY_ENDPOINTS: &[(&str, &[&str])] = &[
    ("POST /api/catalog/publish", &["admin"]),
    ("POST /api/calendar", &["admin"]),
    ("/calendar", &["admin"]),
    ("/catalog", &["admin"]),
    ("GET /api/nodes", &["admin", "supervisor"]),
    ("/nodes", &["admin", "supervisor"]),
    ("POST /api/nodes", &["admin"]),
    ("POST /api/nodes/{code}/revoke", &["admin"]),
    ("POST /nodes/enroll", &["admin"]),
    ("POST /nodes/{code}/revoke", &["admin"]),
    ("GET /api/reports/monthly", &["admin", "supervisor"]),
    ("GET /api/outbox", &["admin", "supervisor", "window"]),
    ("/outbox", &["admin", "supervisor", "window"]),
    ("POST /api/outbox/{id}/retry", &["admin"]),
    ("/dashboard", &["admin", "supervisor", "window", "dept"]),
    ("/queue", &["admin", "supervisor", "window", "dept"]),
    // Without an account from this PC itself (loopback); see `crate::metrics`.
    ("GET /metrics", &["admin", "supervisor", "window", "dept"]),
];

/// Whether [`COUNTY_ENDPOINTS`] lets an account of `role` use `endpoint`; `None` when the table does
/// not name it.
pub fn may_use(role: &str, endpoint: &str) -> Option<bool> {
    COUNTY_ENDPOINTS
        .iter()
        .find(|(name, _)| *name == endpoint)
        .map(|(_, roles)| roles.contains(&base_role(role)))
}

/// 403 unless [`COUNTY_ENDPOINTS`] lets `user` use `endpoint`; an endpoint missing from the table
/// is refused to everyone (a new endpoint has to be placed in it).
pub fn require_endpoint(user: &CurrentUser, endpoint: &str) -> Result<(), AppError> {
    if may_use(&user.role, endpoint) == Some(true) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "账号“{}”的角色无权使用这项功能。",
            user.name
        )))
    }
}

/// Who manages the tier's accounts and reads its audit log: `admin` at the county, the station's
/// `head` at a node.
pub fn manager_role(tier: Tier) -> &'static str {
    match tier {
        Tier::County => "admin",
        _ => "head",
    }
}

/// 403 unless `user` is the tier's [`manager_role`].
pub fn require_manager(tier: Tier, user: &CurrentUser) -> Result<(), AppError> {
    user.require_role(&[manager_role(tier)])
}

/// 403 with a Chinese sentence unless the table allows it.
pub fn require(tier: Tier, user: &CurrentUser, capability: Capability) -> Result<(), AppError> {
    if may(tier, &user.role, capability) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "账号“{}”的角色无权{}。",
            user.name,
            match capability {
                Capability::File => "受理新办件",
                Capability::Read => "查看办件",
                Capability::FullPersonalData => "查看完整的个人信息",
                Capability::Document => "导出办件原始数据",
            }
        )))
    }
}

/// The department a county department account is limited to; `None` for every other account.
pub fn dept_scope(tier: Tier, role: &str) -> Option<&str> {
    (tier == Tier::County)
        .then(|| role.strip_prefix("dept:"))
        .flatten()
}

/// The service area a county window account receives for (`window:企业事务`); `None` for a
/// general window and every other account.
pub fn window_area(tier: Tier, role: &str) -> Option<&str> {
    (tier == Tier::County)
        .then(|| role.strip_prefix("window:"))
        .flatten()
}

/// The role an account's actions are recorded with in a case's events: a window's area is the
/// hall's arrangement, not part of the workflow, and every build (an older node's too) folds a plain
/// `window`.
pub fn recorded_role(role: &str) -> &str {
    if role.starts_with("window:") {
        "window"
    } else {
        role
    }
}

/// 403 with the reason when a window of one service area is asked to receive an item of another:
/// the applicant is sent to the right window rather than having a case started at the wrong one.
pub fn require_area(tier: Tier, user: &CurrentUser, item: &Item) -> Result<(), AppError> {
    match window_area(tier, &user.role) {
        Some(area) if !item.received_at(area) => {
            let mut windows = vec![format!("{}窗口", item.area)];
            windows.extend(item.authorised_areas.iter().map(|a| format!("{a}窗口")));
            Err(AppError::Forbidden(format!(
                "本窗口属于{area}区，不能受理“{}”，请引导申请人到{}办理。",
                item.name,
                windows.join("或")
            )))
        }
        _ => Ok(()),
    }
}

/// Whether a department account may see a case handled by `handling_dept` (an empty one: the
/// item's own department, `item_dept`, still has it) or that it assists (联办: it gives an opinion).
pub fn in_dept(scope: &str, handling_dept: &str, item_dept: &str, assisting: &[String]) -> bool {
    let handling = if handling_dept.is_empty() {
        item_dept
    } else {
        handling_dept
    };
    handling == scope || assisting.iter().any(|d| d == scope)
}

/// 404 (not 403: a department must not learn which case numbers exist elsewhere) for a case outside
/// the account's department.
pub fn require_in_scope(tier: Tier, user: &CurrentUser, case: &CaseDoc) -> Result<(), AppError> {
    match dept_scope(tier, &user.role) {
        Some(scope)
            if !in_dept(
                scope,
                &case.workflow.dept,
                &case.item.department,
                &case.item.assist_departments,
            ) =>
        {
            Err(AppError::NotFound(format!(
                "没有找到办件“{}”。",
                case.case_no
            )))
        }
        _ => Ok(()),
    }
}

/// `110105********002X`: the first six (the region) and the last four.
pub fn mask_id(id: &str) -> String {
    mask(id, 6, 4)
}

/// `138****1234`.
pub fn mask_phone(phone: &str) -> String {
    mask(phone, 3, 4)
}

fn mask(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// A list row as every list shows it: ID number and phone masked.
pub fn mask_summary(summary: &mut CaseSummary) {
    summary.applicant_cert_no = mask_id(&summary.applicant_cert_no);
    summary.phone = mask_phone(&summary.phone);
}

/// A case as someone without [`Capability::FullPersonalData`] sees it; the supervisor keeps the
/// phone (callbacks, 回访).
pub fn mask_case(tier: Tier, role: &str, case: &mut CaseDoc) {
    let applicant = &mut case.applicant;
    applicant.cert_no = mask_id(&applicant.cert_no);
    if base_role(role) != "supervisor" || tier != Tier::County {
        applicant.phone = mask_phone(&applicant.phone);
    }
    applicant.address = if applicant.address.is_empty() {
        String::new()
    } else {
        "（已隐藏）".into()
    };
    case.query_password = "******".into();
}

/// Applies the table to a case someone is about to see; whether they see it in full (the caller
/// records that in the audit log, 安全审计).
pub fn case_as_seen_by(tier: Tier, user: &CurrentUser, case: &mut CaseDoc) -> bool {
    let full = may(tier, &user.role, Capability::FullPersonalData);
    if !full {
        mask_case(tier, &user.role, case);
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/SECURITY.md carries the endpoint table for operators and assessors: the same rows.
    #[test]
    fn the_endpoint_table_in_the_docs_is_the_one_in_the_code() {
        let docs = include_str!("../../../docs/SECURITY.md");
        for (endpoint, roles) in COUNTY_ENDPOINTS {
            let row = format!("| `{endpoint}` | {} |", roles.join(", "));
            assert!(docs.contains(&row), "docs/SECURITY.md lacks the row {row}");
        }
    }

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask_id("11010519491231002X"), "110105********002X");
        assert_eq!(mask_phone("13800271234"), "138****1234");
        assert_eq!(mask_phone("123"), "***");
    }

    #[test]
    fn the_table_gives_each_county_role_only_what_it_needs() {
        use Capability::*;
        assert!(may(Tier::County, "window", File));
        for role in ["dept:民政", "supervisor", "admin"] {
            assert!(!may(Tier::County, role, File), "{role} files no intake");
            assert!(may(Tier::County, role, Read));
        }
        assert!(may(Tier::County, "dept:民政", FullPersonalData));
        assert!(!may(Tier::County, "admin", FullPersonalData));
        assert!(!may(Tier::County, "supervisor", Document));
        assert!(may(Tier::Village, "agent", FullPersonalData));
        assert_eq!(dept_scope(Tier::County, "dept:民政"), Some("民政"));
        assert_eq!(dept_scope(Tier::Township, "dept:民政"), None);
        // A window of a service area files and reads like any window.
        for cap in [File, Read, FullPersonalData, Document] {
            assert!(may(Tier::County, "window:企业事务", cap));
        }
        assert_eq!(
            window_area(Tier::County, "window:企业事务"),
            Some("企业事务")
        );
        assert_eq!(window_area(Tier::County, "window"), None);
        assert_eq!(recorded_role("window:企业事务"), "window");
        assert_eq!(recorded_role("dept:民政"), "dept:民政");
    }
}
