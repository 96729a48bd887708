//! What a new catalogue changes against the one in use, in the words the county's admin checks
//! before publishing it to every station: items added, removed, and each changed field of an item
//! (its limits, department, materials …) and of the county's settings.

use crate::catalog::{Catalog, Item, Material};

/// One item whose fields differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemChange {
    pub code: String,
    pub name: String,
    /// One line per changed field, e.g. `承诺时限：10 → 5 个工作日`.
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    /// (code, name) of items only the new catalogue has.
    pub added: Vec<(String, String)>,
    /// (code, name) of items only the old catalogue has: stations can no longer file them.
    pub removed: Vec<(String, String)>,
    pub changed: Vec<ItemChange>,
    /// Changed county settings (hall, query address …), one line each.
    pub county: Vec<String>,
}

impl CatalogDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.county.is_empty()
    }
}

fn field<T: PartialEq + std::fmt::Display>(out: &mut Vec<String>, label: &str, old: T, new: T) {
    if old != new {
        out.push(format!("{label}：{old} → {new}"));
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "是"
    } else {
        "否"
    }
}

fn required(m: &Material) -> &'static str {
    if m.required {
        "必交"
    } else {
        "非必交"
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "（无）"
    } else {
        s
    }
}

fn fee_text(fee: &Option<crate::manual::Fee>) -> String {
    match fee {
        None => "不收费".into(),
        Some(f) => format!("{}，依据{}", f.text(), f.basis),
    }
}

fn materials(out: &mut Vec<String>, old: &[Material], new: &[Material]) {
    for m in new {
        match old.iter().find(|o| o.id == m.id) {
            None => out.push(format!("新增材料「{}」（{}）", m.name, required(m))),
            Some(o) => {
                if o.name != m.name {
                    out.push(format!("材料「{}」改名为「{}」", o.name, m.name));
                }
                if o.required != m.required {
                    out.push(format!(
                        "材料「{}」：{} → {}",
                        m.name,
                        required(o),
                        required(m)
                    ));
                }
                if o.form != m.form || o.copies != m.copies {
                    out.push(format!(
                        "材料「{}」：{} {} 份 → {} {} 份",
                        m.name, o.form, o.copies, m.form, m.copies
                    ));
                }
                for (label, before, after) in [
                    ("签字盖章", &o.sign_seal, &m.sign_seal),
                    ("依据", &o.basis, &m.basis),
                    ("样表", &o.sample, &m.sample),
                    ("备注", &o.note, &m.note),
                ] {
                    if before != after {
                        out.push(format!(
                            "材料「{}」{label}：{} → {}",
                            m.name,
                            or_none(before),
                            or_none(after)
                        ));
                    }
                }
            }
        }
    }
    for o in old {
        if !new.iter().any(|m| m.id == o.id) {
            out.push(format!("删除材料「{}」", o.name));
        }
    }
}

fn item_changes(old: &Item, new: &Item) -> Vec<String> {
    let mut out = Vec::new();
    field(&mut out, "名称", &old.name, &new.name);
    field(&mut out, "部门", &old.department, &new.department);
    field(
        &mut out,
        "部门全称",
        &old.department_full,
        &new.department_full,
    );
    field(&mut out, "办理类型", old.kind.label(), new.kind.label());
    field(&mut out, "事项类型", &old.category, &new.category);
    let unit = new.day_unit.label();
    if old.legal_days != new.legal_days {
        out.push(format!(
            "法定时限：{} → {} {unit}",
            old.legal_days, new.legal_days
        ));
    }
    if old.promised_days != new.promised_days {
        out.push(format!(
            "承诺时限：{} → {} {unit}",
            old.promised_days, new.promised_days
        ));
    }
    field(
        &mut out,
        "时限单位",
        old.day_unit.label(),
        new.day_unit.label(),
    );
    field(&mut out, "村级办理", &old.village, &new.village);
    field(&mut out, "加急", yes_no(old.urgent), yes_no(new.urgent));
    field(
        &mut out,
        "协办部门",
        old.assist_departments.join("、").as_str(),
        new.assist_departments.join("、").as_str(),
    );
    field(
        &mut out,
        "上报机关",
        &old.higher_authority,
        &new.higher_authority,
    );
    let area = |a: &str| {
        if a.is_empty() {
            "所有窗口".to_string()
        } else {
            a.to_string()
        }
    };
    field(&mut out, "受理窗口", area(&old.area), area(&new.area));
    field(
        &mut out,
        "授权受理的其他窗口",
        old.authorised_areas.join("、").as_str(),
        new.authorised_areas.join("、").as_str(),
    );
    field(
        &mut out,
        "设定依据",
        or_none(&old.legal_basis.join("；")),
        or_none(&new.legal_basis.join("；")),
    );
    field(&mut out, "收费", fee_text(&old.fee), fee_text(&new.fee));
    field(
        &mut out,
        "办理流程",
        or_none(&old.process.join(" → ")),
        or_none(&new.process.join(" → ")),
    );
    materials(&mut out, &old.materials, &new.materials);
    if out.is_empty() && old != new {
        // Keywords: worth a line so the admin is not told "no change".
        out.push("检索关键词有变化".into());
    }
    out
}

/// The changes from `old` to `new`, items in the new catalogue's order.
pub fn diff(old: &Catalog, new: &Catalog) -> CatalogDiff {
    let mut d = CatalogDiff::default();
    for item in &new.items {
        match old.items.iter().find(|o| o.code == item.code) {
            None => d.added.push((item.code.clone(), item.name.clone())),
            Some(o) => {
                let changes = item_changes(o, item);
                if !changes.is_empty() {
                    d.changed.push(ItemChange {
                        code: item.code.clone(),
                        name: item.name.clone(),
                        changes,
                    });
                }
            }
        }
    }
    for o in &old.items {
        if !new.items.iter().any(|i| i.code == o.code) {
            d.removed.push((o.code.clone(), o.name.clone()));
        }
    }
    let (oc, nc) = (&old.county, &new.county);
    field(&mut d.county, "自助查询网址", &oc.query_url, &nc.query_url);
    field(&mut d.county, "领取结果的大厅", &oc.hall, &nc.hall);
    field(
        &mut d.county,
        "行政复议机关",
        &oc.reconsideration_body,
        &nc.reconsideration_body,
    );
    field(&mut d.county, "行政诉讼法院", &oc.court, &nc.court);
    field(
        &mut d.county,
        "差评整改工作日",
        oc.rectify_days,
        nc.rectify_days,
    );
    field(
        &mut d.county,
        "补正期限工作日",
        oc.correction_days,
        nc.correction_days,
    );
    field(
        &mut d.county,
        "大厅服务区",
        oc.service_areas.join("、").as_str(),
        nc.service_areas.join("、").as_str(),
    );
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_change_is_named() {
        let old = Catalog::builtin().unwrap();
        assert!(diff(&old, &old).is_empty());
        let mut new = old.clone();
        let removed = new.items.remove(1);
        let mut added = new.items[0].clone();
        added.code = "NEW-0001".into();
        added.name = "新事项".into();
        new.items.push(added);
        let first = &mut new.items[0];
        first.promised_days += 2;
        first.department = "新部门".into();
        first.area = "企业事务".into();
        first.fee = Some(crate::manual::Fee {
            amount_fen: 1500,
            rule: "工本费".into(),
            basis: "某收费文件".into(),
        });
        first.materials[1].sign_seal = "加盖村委会公章".into();
        first.materials[0].required = !first.materials[0].required;
        let gone = first.materials.pop().unwrap();
        new.county.hall = "新大厅".into();

        let d = diff(&old, &new);
        assert_eq!(d.added, [("NEW-0001".to_string(), "新事项".to_string())]);
        assert_eq!(d.removed, [(removed.code, removed.name)]);
        assert_eq!(d.changed.len(), 1);
        let lines = d.changed[0].changes.join("\n");
        assert!(lines.contains("承诺时限："), "{lines}");
        assert!(
            lines.contains("部门：") && lines.contains("→ 新部门"),
            "{lines}"
        );
        assert!(lines.contains("必交"), "{lines}");
        assert!(lines.contains("受理窗口：社会事务 → 企业事务"), "{lines}");
        assert!(
            lines.contains("收费：不收费 → 15.00元（工本费），依据某收费文件"),
            "{lines}"
        );
        assert!(
            lines.contains("签字盖章") && lines.contains("→ 加盖村委会公章"),
            "{lines}"
        );
        assert!(
            lines.contains(&format!("删除材料「{}」", gone.name)),
            "{lines}"
        );
        assert_eq!(d.county.len(), 1);
        assert!(d.county[0].contains("新大厅"));
    }
}
