//! The catalogue of service items (政务服务事项目录): data, not code.
//!
//! The county publishes a numbered version of the catalogue; the built-in version is
//! `catalog/yangxin.json`, and later versions arrive at the nodes by sync and are stored beside the cases.
//! This module owns the types, parsing with integrity checks, and the look-ups agents need (by code, by a
//! typed search word). It does not know where a catalogue is stored.

use serde::{Deserialize, Serialize};

/// The catalogue shipped in the binary, used when a node is initialised without a newer one.
pub const BUILTIN_CATALOG_JSON: &str = include_str!("../catalog/yangxin.json");

/// Item kind as the county classifies it: 即办 (done on the spot), 承诺 (promised within N working days),
/// 上报 (approval sits with a higher authority), 联办 (several departments jointly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemKind {
    #[serde(rename = "即办")]
    Immediate,
    #[serde(rename = "承诺")]
    Promised,
    #[serde(rename = "上报")]
    ReportUp,
    #[serde(rename = "联办")]
    Joint,
}

impl ItemKind {
    pub fn label(self) -> &'static str {
        match self {
            ItemKind::Immediate => "即办",
            ItemKind::Promised => "承诺",
            ItemKind::ReportUp => "上报",
            ItemKind::Joint => "联办",
        }
    }

    /// GB/T 39046 case type: an immediate item is a 即办件, everything else a 承诺件.
    pub fn case_type(self) -> &'static str {
        match self {
            ItemKind::Immediate => "即办件",
            _ => "承诺件",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayUnit {
    #[default]
    Working,
    Calendar,
}

impl DayUnit {
    /// The name a case document stores (`working`, `calendar`).
    pub fn as_str(self) -> &'static str {
        match self {
            DayUnit::Working => "working",
            DayUnit::Calendar => "calendar",
        }
    }

    /// From a case document: anything but `calendar` counts working days, as the county does.
    pub fn parse(s: &str) -> DayUnit {
        if s == "calendar" {
            DayUnit::Calendar
        } else {
            DayUnit::Working
        }
    }

    /// The day `days` of this unit after `from` (counting from the day after it).
    pub fn due_date(
        self,
        from: chrono::NaiveDate,
        days: u64,
        calendar: &crate::calendar::Calendar,
    ) -> Option<chrono::NaiveDate> {
        match self {
            DayUnit::Calendar => from.checked_add_days(chrono::Days::new(days)),
            DayUnit::Working => Some(calendar.due_date(from, u32::try_from(days).ok()?)),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DayUnit::Working => "个工作日",
            DayUnit::Calendar => "个自然日",
        }
    }
}

/// One material on an item's checklist (受理材料标准化手册 entry, reduced to what intake needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Material {
    /// Stable id within the item: what the API's `materials` array names.
    pub id: String,
    pub name: String,
    pub required: bool,
    /// 原件 / 复印件 / 原件及复印件 / 电子.
    pub form: String,
    pub copies: u32,
    /// Short hint shown to the agent beside the checkbox.
    #[serde(default)]
    pub note: String,
    /// Why the material is asked for (材料依据).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub basis: String,
    /// Signature and seal requirements (申请人签字、加盖公章 …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sign_seal: String,
    /// The sample form's reference (样表), where the county has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sample: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub code: String,
    pub name: String,
    /// Short department name (人社, 民政 …): what queues and reports group by.
    pub department: String,
    pub department_full: String,
    pub kind: ItemKind,
    /// 事项类型 as the county's list names it (行政许可, 行政给付, 行政确认, 公共服务, 其他行政权力):
    /// which notices the law expects (only 行政许可 ends in a 行政许可决定书). Empty in an older
    /// catalogue: treated as not a licence.
    #[serde(default)]
    pub category: String,
    /// Statutory limit in working days (0 for 即办).
    pub legal_days: u32,
    /// The county's promise in working days (≤ legal_days).
    pub promised_days: u32,
    /// Whether the limits count working days (the rule) or calendar days (some police and legal-aid
    /// items): deadlines must use the unit the law uses.
    #[serde(default)]
    pub day_unit: DayUnit,
    /// "办结" when the village station completes the item itself (村级可直接办结: the authorisation
    /// matrix lets it record a `complete_on_site`), "代收" when it collects and forwards.
    pub village: String,
    /// Urgent items go from the county's receipt to the department within 10 minutes (else 30).
    #[serde(default)]
    pub urgent: bool,
    /// 联办: the assisting departments; the lead (`department`) decides after each has given its opinion.
    #[serde(default)]
    pub assist_departments: Vec<String>,
    /// 上报: the higher authority the department reports to with its 初审意见.
    #[serde(default)]
    pub higher_authority: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The hall's service area whose windows receive the item (社会事务, 企业事务, 不动产交易, or a
    /// specialist window such as 公安); one of the county's `service_areas`. Empty: every window
    /// receives it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub area: String,
    /// Other areas' windows the department has authorised to receive the item too (委托受理), e.g.
    /// a tax item also taken at the 不动产交易 windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorised_areas: Vec<String>,
    /// 设定依据: the laws and rules the item rests on, one citation per line (`crate::manual`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legal_basis: Vec<String>,
    /// 收费标准; none: free of charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<crate::manual::Fee>,
    /// 办理流程: the steps as the applicant goes through them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub process: Vec<String>,
    pub materials: Vec<Material>,
}

impl Item {
    /// Whether the item is an administrative licence (行政许可法 applies to its notices).
    pub fn is_licence(&self) -> bool {
        self.category == "行政许可"
    }

    /// Whether a window of `window_area` may receive the item: its own area's windows, those the
    /// department authorised, and any window for an item without an area.
    pub fn received_at(&self, window_area: &str) -> bool {
        self.area.is_empty()
            || self.area == window_area
            || self.authorised_areas.iter().any(|a| a == window_area)
    }

    pub fn material(&self, id: &str) -> Option<&Material> {
        self.materials.iter().find(|m| m.id == id)
    }

    /// Whether a typed search word matches this item: name, department, keywords or code.
    pub fn matches(&self, query: &str) -> bool {
        let q = query.trim();
        q.is_empty()
            || self.name.contains(q)
            || self.department.contains(q)
            || self.code.eq_ignore_ascii_case(q)
            || self
                .keywords
                .iter()
                .any(|k| k.contains(q) || q.contains(k.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub version: u32,
    pub region: String,
    pub region_name: String,
    pub published: String,
    /// The county's settings that every tier needs offline (notices, receipts, rectifications).
    #[serde(default)]
    pub county: CountySettings,
    pub items: Vec<Item>,
}

/// What the county decides once for all its notices and receipts, published with the catalogue so
/// a village prints the same notice offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CountySettings {
    /// The public self-query page the receipt's QR code points to (`https://…/query`); empty: the
    /// QR code carries only the case number.
    pub query_url: String,
    /// Where results are collected at the county (the hall's address), for texts and notices.
    pub hall: String,
    /// The body that hears 行政复议 (usually the county government) and the court for 行政诉讼.
    pub reconsideration_body: String,
    pub court: String,
    /// Working days a rectification of a bad review has.
    pub rectify_days: u32,
    /// Working days the applicant has to return the materials a 补正材料通知书 asks for.
    pub correction_days: u32,
    /// The hall's service areas (综合窗口 groups and specialist windows): what an item's `area` and a
    /// window account's area name.
    pub service_areas: Vec<String>,
}

/// The areas of a county hall under 一窗通办 (DOMAIN.md): three comprehensive areas and the
/// specialist windows that stay separate.
pub const STANDARD_SERVICE_AREAS: [&str; 7] = [
    "社会事务",
    "企业事务",
    "不动产交易",
    "公安",
    "税务",
    "公积金",
    "婚姻登记",
];

impl CountySettings {
    /// What a receipt, a notice and a deadline need to be sound: an http(s) self-query address
    /// without spaces, texts of a printable length, periods within a working year.
    fn check(&self) -> Result<(), String> {
        let url = self.query_url.as_str();
        let web = url.starts_with("https://") || url.starts_with("http://");
        if !(url.is_empty() || web)
            || url.len() > 200
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("query_url must be an http(s) address of at most 200 characters".into());
        }
        for (name, text) in [
            ("hall", &self.hall),
            ("reconsideration_body", &self.reconsideration_body),
            ("court", &self.court),
        ] {
            if text.chars().count() > 100 || text.chars().any(char::is_control) {
                return Err(format!(
                    "{name} must be at most 100 characters, on one line"
                ));
            }
        }
        for (name, days) in [
            ("rectify_days", self.rectify_days),
            ("correction_days", self.correction_days),
        ] {
            if !(1..=250).contains(&days) {
                return Err(format!("{name} must be 1 to 250 working days"));
            }
        }
        let mut areas = std::collections::BTreeSet::new();
        for area in &self.service_areas {
            if area.is_empty() || area.chars().count() > 20 || area.chars().any(char::is_control) {
                return Err("each service area must be 1 to 20 characters, on one line".into());
            }
            if !areas.insert(area) {
                return Err(format!("service area {area} is listed twice"));
            }
        }
        Ok(())
    }
}

impl Default for CountySettings {
    fn default() -> Self {
        CountySettings {
            query_url: String::new(),
            hall: String::new(),
            reconsideration_body: String::new(),
            court: String::new(),
            rectify_days: 5,
            correction_days: 15,
            service_areas: STANDARD_SERVICE_AREAS.map(String::from).to_vec(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalogue is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("catalogue item {code}: {problem}")]
    Item { code: String, problem: String },
    #[error("catalogue has no items")]
    Empty,
    #[error("catalogue county settings: {0}")]
    County(String),
}

impl Catalog {
    /// The built-in catalogue. It is checked by a unit test, so failure here means a broken build.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::from_json(BUILTIN_CATALOG_JSON)
    }

    /// Parses and checks a catalogue: unique item codes, unique material ids per item, promised days
    /// within the legal limit, at least one required material. A catalogue that fails is refused whole,
    /// so a bad push from the county can never leave a node with half a catalogue.
    pub fn from_json(json: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog = serde_json::from_str(json)?;
        if catalog.items.is_empty() {
            return Err(CatalogError::Empty);
        }
        catalog.county.check().map_err(CatalogError::County)?;
        let mut codes = std::collections::BTreeSet::new();
        for item in &catalog.items {
            let fail = |problem: &str| CatalogError::Item {
                code: item.code.clone(),
                problem: problem.to_string(),
            };
            if item.code.is_empty() || item.code.len() > 50 {
                return Err(fail("code must be 1-50 characters"));
            }
            if !codes.insert(item.code.as_str()) {
                return Err(fail("duplicate item code"));
            }
            if item.promised_days > item.legal_days {
                return Err(fail("promised_days exceeds legal_days"));
            }
            if !item.materials.iter().any(|m| m.required) {
                return Err(fail("no required material"));
            }
            if item.assist_departments.contains(&item.department) {
                return Err(fail("the lead department cannot also assist"));
            }
            if item.village != "办结" && item.village != "代收" {
                return Err(fail("village must be 办结 or 代收"));
            }
            let known = |area: &String| catalog.county.service_areas.contains(area);
            if !(item.area.is_empty() || known(&item.area)) {
                return Err(fail(&format!(
                    "area {} is not one of the county's service areas",
                    item.area
                )));
            }
            if let Some(other) = item.authorised_areas.iter().find(|a| !known(a)) {
                return Err(fail(&format!(
                    "authorised area {other} is not one of the county's service areas"
                )));
            }
            if item.area.is_empty() && !item.authorised_areas.is_empty() {
                return Err(fail("authorised_areas needs the item's own area"));
            }
            crate::manual::check(item).map_err(|problem| fail(&problem))?;
            let mut ids = std::collections::BTreeSet::new();
            if !item.materials.iter().all(|m| ids.insert(m.id.as_str())) {
                return Err(fail("duplicate material id"));
            }
        }
        Ok(catalog)
    }

    pub fn item(&self, code: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.code == code)
    }

    pub fn search<'a>(&'a self, query: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.items.iter().filter(move |i| i.matches(query))
    }

    /// The items a window of `area` receives (every item for a window without an area).
    pub fn received_at<'a>(&'a self, area: Option<&'a str>) -> impl Iterator<Item = &'a Item> + 'a {
        self.items
            .iter()
            .filter(move |i| area.is_none_or(|a| i.received_at(a)))
    }

    pub fn departments(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.items.iter().map(|i| i.department.as_str()).collect();
        d.sort_unstable();
        d.dedup();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_complete_enough_for_a_county() {
        let c = Catalog::builtin().unwrap();
        assert!(c.version >= 1);
        assert!(c.items.len() >= 30, "{} items", c.items.len());
        assert!(c.departments().len() >= 10, "{:?}", c.departments());
        for kind in [
            ItemKind::Immediate,
            ItemKind::Promised,
            ItemKind::ReportUp,
            ItemKind::Joint,
        ] {
            assert!(c.items.iter().any(|i| i.kind == kind), "no {kind:?} item");
        }
    }

    #[test]
    fn search_finds_items_by_name_fragment_and_keyword() {
        let c = Catalog::builtin().unwrap();
        assert!(c.search("残疾").count() >= 1);
        assert!(c.search("养老").count() >= 1);
        assert_eq!(c.search("").count(), c.items.len());
        assert_eq!(c.search("不存在的事项名称").count(), 0);
    }

    #[test]
    fn duplicate_codes_and_broken_limits_are_refused() {
        let mut c = Catalog::builtin().unwrap();
        let mut dup = c.items[0].clone();
        dup.name.push('2');
        c.items.push(dup);
        let json = serde_json::to_string(&c).unwrap();
        assert!(matches!(
            Catalog::from_json(&json),
            Err(CatalogError::Item { .. })
        ));

        let mut c = Catalog::builtin().unwrap();
        c.items[0].promised_days = c.items[0].legal_days + 1;
        let json = serde_json::to_string(&c).unwrap();
        assert!(Catalog::from_json(&json).is_err());
        assert!(Catalog::from_json("{").is_err());
    }

    #[test]
    fn every_builtin_item_has_its_area_and_a_window_receives_only_its_areas() {
        let c = Catalog::builtin().unwrap();
        assert!(c.items.iter().all(|i| !i.area.is_empty()));
        let market = c.item("YX-SC-001").unwrap();
        assert_eq!(market.area, "企业事务");
        assert!(market.received_at("企业事务"));
        assert!(!market.received_at("社会事务"));
        let pension = c.item("YX-RS-001").unwrap();
        assert!(pension.received_at("社会事务") && !pension.received_at("企业事务"));
        // 城乡居民社会保险费缴纳: a tax item the social-affairs windows take too.
        let fee = c.item("YX-SW-001").unwrap();
        assert!(fee.received_at("税务") && fee.received_at("社会事务"));
        assert!(!fee.received_at("企业事务"));
        let enterprise: Vec<&str> = c
            .received_at(Some("企业事务"))
            .map(|i| i.department.as_str())
            .collect();
        assert!(!enterprise.is_empty() && enterprise.iter().all(|d| *d == "市场监管"));
        assert_eq!(c.received_at(None).count(), c.items.len());

        for bad in [
            |i: &mut Item| i.area = "不存在的区".into(),
            |i: &mut Item| i.authorised_areas = vec!["不存在的区".into()],
            |i: &mut Item| {
                i.area.clear();
                i.authorised_areas = vec!["税务".into()];
            },
        ] {
            let mut c = Catalog::builtin().unwrap();
            bad(&mut c.items[0]);
            let json = serde_json::to_string(&c).unwrap();
            assert!(matches!(
                Catalog::from_json(&json),
                Err(CatalogError::Item { .. })
            ));
        }
        let mut twice = Catalog::builtin().unwrap();
        twice.county.service_areas.push("公安".into());
        let json = serde_json::to_string(&twice).unwrap();
        assert!(matches!(
            Catalog::from_json(&json),
            Err(CatalogError::County(_))
        ));
    }

    #[test]
    fn county_settings_are_checked_and_an_older_catalogue_gets_the_defaults() {
        let c = Catalog::builtin().unwrap();
        assert_eq!(c.county.rectify_days, 5);
        let mut older: serde_json::Value = serde_json::to_value(&c).unwrap();
        older.as_object_mut().unwrap().remove("county");
        let older = Catalog::from_json(&older.to_string()).unwrap();
        assert_eq!(older.county, CountySettings::default());
        for bad in [
            |s: &mut CountySettings| s.query_url = "javascript:alert(1)".into(),
            |s: &mut CountySettings| s.query_url = "https://a b".into(),
            |s: &mut CountySettings| s.rectify_days = 0,
            |s: &mut CountySettings| s.correction_days = 400,
            |s: &mut CountySettings| s.court = "法院\n第二行".into(),
        ] {
            let mut c = Catalog::builtin().unwrap();
            bad(&mut c.county);
            let json = serde_json::to_string(&c).unwrap();
            assert!(matches!(
                Catalog::from_json(&json),
                Err(CatalogError::County(_))
            ));
        }
    }
}
