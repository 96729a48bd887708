//! The 受理材料标准化手册 parts of the catalogue beyond what intake needs: an item's legal basis, fee,
//! process and the county's rules for each material (its basis, signature and seal, sample form), and
//! the 办事指南 a window or a village prints from them, offline, with the catalogue it holds.
//!
//! The fields live on [`crate::catalog::Item`] and [`crate::catalog::Material`] (older catalogues
//! have none and read as empty); this module checks them and lays out the guide.

use serde::{Deserialize, Serialize};

use crate::catalog::{CountySettings, Item, ItemKind};

/// What an item costs the applicant (收费标准), when it costs anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fee {
    /// The fixed amount in fen (分); 0 when the amount follows a rule.
    pub amount_fen: u64,
    /// The rule when the amount is not fixed, or what the amount is for (工本费 …).
    pub rule: String,
    /// The document that sets the fee (收费依据).
    pub basis: String,
}

/// `20.00`: an amount as the forms take it back (`parse_yuan`).
pub fn yuan_digits(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// `20.00元`.
pub fn yuan_text(fen: u64) -> String {
    format!("{}元", yuan_digits(fen))
}

/// `12`, `12.5`, `12.50` (yuan, as typed) in fen; empty is 0.
pub fn parse_yuan(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    let bad = || format!("金额“{t}”应为元，最多两位小数，例如 20 或 12.50。");
    let (whole, part) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty()
        || part.len() > 2
        || !whole
            .chars()
            .chain(part.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let part: u64 = format!("{part:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(part))
        .ok_or_else(bad)
}

impl Fee {
    /// `20.00元（工本费）`, or the rule alone.
    pub fn text(&self) -> String {
        let amount = (self.amount_fen > 0).then(|| yuan_text(self.amount_fen));
        match (amount, self.rule.is_empty()) {
            (Some(a), true) => a,
            (Some(a), false) => format!("{a}（{}）", self.rule),
            (None, _) => self.rule.clone(),
        }
    }
}

/// Longest text of one manual field: a legal citation or a process step fits several times over.
const MAX_TEXT: usize = 300;
/// Most lines of a list (legal bases, process steps).
const MAX_LINES: usize = 20;

fn text_ok(what: &str, s: &str) -> Result<(), String> {
    if s.chars().count() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(format!(
            "{what} must be at most {MAX_TEXT} characters on one line"
        ));
    }
    Ok(())
}

fn lines_ok(what: &str, lines: &[String]) -> Result<(), String> {
    if lines.len() > MAX_LINES {
        return Err(format!("{what} has more than {MAX_LINES} lines"));
    }
    for line in lines {
        if line.trim().is_empty() {
            return Err(format!("{what} has an empty line"));
        }
        text_ok(what, line)?;
    }
    Ok(())
}

/// The manual's fields of `item` are printable: bounded, on one line each, a fee with an amount or a
/// rule and its basis.
pub fn check(item: &Item) -> Result<(), String> {
    lines_ok("legal_basis", &item.legal_basis)?;
    lines_ok("process", &item.process)?;
    if let Some(fee) = &item.fee {
        if fee.amount_fen == 0 && fee.rule.trim().is_empty() {
            return Err("fee needs an amount or a rule".into());
        }
        if fee.amount_fen > 100_000_000 {
            return Err("fee amount is beyond a million yuan".into());
        }
        if fee.basis.trim().is_empty() {
            return Err("fee needs its basis (收费依据)".into());
        }
        text_ok("fee.rule", &fee.rule)?;
        text_ok("fee.basis", &fee.basis)?;
    }
    for m in &item.materials {
        for (what, s) in [
            ("material basis", &m.basis),
            ("material sign_seal", &m.sign_seal),
            ("material sample", &m.sample),
            ("material note", &m.note),
        ] {
            text_ok(what, s).map_err(|e| format!("{}: {e}", m.id))?;
        }
    }
    Ok(())
}

/// One row of the guide's materials table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuideMaterial {
    pub name: String,
    pub required: &'static str,
    pub form: String,
    pub copies: u32,
    pub sign_seal: String,
    pub basis: String,
    pub sample: String,
    pub note: String,
}

/// The 办事指南 of an item as every tier prints it: each line already in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guide {
    pub code: String,
    pub name: String,
    pub department: String,
    pub category: String,
    pub kind: String,
    pub legal_limit: String,
    pub promised_limit: String,
    pub legal_basis: Vec<String>,
    pub fee: String,
    pub fee_basis: String,
    pub process: Vec<String>,
    pub windows: String,
    pub village: String,
    pub hall: String,
    pub materials: Vec<GuideMaterial>,
}

fn limit(days: u32, item: &Item) -> String {
    if item.kind == ItemKind::Immediate || days == 0 {
        "即时办结".into()
    } else {
        format!("{days}{}", item.day_unit.label())
    }
}

fn or_dash(s: &str) -> String {
    if s.trim().is_empty() {
        "—".into()
    } else {
        s.to_string()
    }
}

impl Guide {
    pub fn of(item: &Item, county: &CountySettings) -> Guide {
        let mut windows = if item.area.is_empty() {
            "各综合窗口".to_string()
        } else {
            format!("{}窗口", item.area)
        };
        for a in &item.authorised_areas {
            windows.push_str(&format!("、{a}窗口（部门授权）"));
        }
        let (fee, fee_basis) = match &item.fee {
            Some(f) => (f.text(), f.basis.clone()),
            None => ("不收费".into(), String::new()),
        };
        Guide {
            code: item.code.clone(),
            name: item.name.clone(),
            department: item.department_full.clone(),
            category: or_dash(&item.category),
            kind: format!("{}件", item.kind.label()),
            legal_limit: limit(item.legal_days, item),
            promised_limit: limit(item.promised_days, item),
            legal_basis: item.legal_basis.clone(),
            fee,
            fee_basis,
            process: item.process.clone(),
            windows,
            village: if item.village == "办结" {
                "村（社区）便民服务站可直接办结".into()
            } else {
                "村（社区）便民服务站代收，报送县级办理".into()
            },
            hall: or_dash(&county.hall),
            materials: item
                .materials
                .iter()
                .map(|m| GuideMaterial {
                    name: m.name.clone(),
                    required: if m.required { "必交" } else { "视情况" },
                    form: m.form.clone(),
                    copies: m.copies,
                    sign_seal: or_dash(&m.sign_seal),
                    basis: or_dash(&m.basis),
                    sample: or_dash(&m.sample),
                    note: or_dash(&m.note),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn every_builtin_item_carries_its_basis_and_process_and_the_guide_says_the_fee() {
        let c = Catalog::builtin().unwrap();
        for item in &c.items {
            assert!(
                !item.legal_basis.is_empty(),
                "{} has no legal basis",
                item.code
            );
            assert!(item.process.len() >= 3, "{} has no process", item.code);
            check(item).unwrap();
        }
        let id_card = Guide::of(c.item("YX-GA-001").unwrap(), &c.county);
        assert_eq!(id_card.fee, "20.00元（居民身份证工本费）");
        assert!(id_card.fee_basis.contains("2322"), "{}", id_card.fee_basis);
        let pension = Guide::of(c.item("YX-RS-001").unwrap(), &c.county);
        assert_eq!(pension.fee, "不收费");
        assert_eq!(pension.promised_limit, "即时办结");
        assert_eq!(pension.windows, "社会事务窗口");
        let form = pension
            .materials
            .iter()
            .find(|m| m.name.contains("登记表"))
            .unwrap();
        assert_ne!(form.sample, "—", "a form has its sample");
        assert_ne!(form.sign_seal, "—");
    }

    #[test]
    fn a_fee_without_basis_or_amount_and_overlong_text_are_refused() {
        let c = Catalog::builtin().unwrap();
        let mut item = c.items[0].clone();
        item.fee = Some(Fee {
            amount_fen: 1000,
            rule: String::new(),
            basis: String::new(),
        });
        assert!(check(&item).unwrap_err().contains("basis"));
        item.fee = Some(Fee::default());
        assert!(check(&item).unwrap_err().contains("amount or a rule"));
        item.fee = None;
        item.legal_basis = vec!["法".repeat(MAX_TEXT + 1)];
        assert!(check(&item).is_err());
        item.legal_basis = vec!["第一行\n第二行".into()];
        assert!(check(&item).is_err());
        item.legal_basis = vec![];
        item.materials[0].sign_seal = "签".repeat(MAX_TEXT + 1);
        assert!(check(&item).is_err());
        assert_eq!(
            Fee {
                amount_fen: 8000,
                rule: String::new(),
                basis: "x".into()
            }
            .text(),
            "80.00元"
        );
    }
}
