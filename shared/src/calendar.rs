//! Working-day calendar: statutory holidays and makeup working days (调休) as data, one table a year.
//!
//! Deadlines count working days, so the calendar decides them; the county updates it every year and it
//! reaches every node by sync. Outside any loaded year only weekends are days off, and
//! [`Calendar::covers`] tells the caller so it can warn. Pure: "today" always comes from the caller.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub const BUILTIN_2026_JSON: &str = include_str!("../calendar/cn-2026.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolidayRange {
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// One year's State Council arrangement, as published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct YearTable {
    pub year: i32,
    #[serde(default)]
    pub source: String,
    pub holidays: Vec<HolidayRange>,
    pub makeup_workdays: Vec<NaiveDate>,
}

#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// The tables as loaded, by year (what is stored and sent to nodes).
    tables: std::collections::BTreeMap<i32, String>,
    years: BTreeSet<i32>,
    off: BTreeSet<NaiveDate>,
    makeup: BTreeSet<NaiveDate>,
}

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar table is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("calendar {year}: {problem}")]
    Table { year: i32, problem: String },
}

impl Calendar {
    /// The built-in 2026 table.
    pub fn builtin() -> Result<Calendar, CalendarError> {
        let mut c = Calendar::default();
        c.add_year_json(BUILTIN_2026_JSON)?;
        Ok(c)
    }

    /// Adds (or replaces) one year's table after checking that every date lies in that year, that no
    /// range runs backwards and that no day is both a holiday and a makeup working day.
    pub fn add_year_json(&mut self, json: &str) -> Result<(), CalendarError> {
        let table: YearTable = serde_json::from_str(json)?;
        let fail = |problem: String| CalendarError::Table {
            year: table.year,
            problem,
        };
        let mut off = BTreeSet::new();
        for h in &table.holidays {
            if h.from > h.to || h.from.year() != table.year || h.to.year() != table.year {
                return Err(fail(format!("holiday {} has a bad date range", h.name)));
            }
            let mut d = h.from;
            while d <= h.to {
                off.insert(d);
                d = d + Days::new(1);
            }
        }
        for m in &table.makeup_workdays {
            if m.year() != table.year || off.contains(m) {
                return Err(fail(format!(
                    "makeup workday {m} is outside the year or a holiday"
                )));
            }
        }
        self.off.retain(|d| d.year() != table.year);
        self.makeup.retain(|d| d.year() != table.year);
        self.off.extend(off);
        self.makeup.extend(table.makeup_workdays.iter().copied());
        self.years.insert(table.year);
        self.tables.insert(table.year, json.to_string());
        Ok(())
    }

    /// The loaded tables as a JSON array of year tables (what the hub stores and sends to nodes).
    pub fn to_json(&self) -> String {
        format!(
            "[{}]",
            self.tables.values().cloned().collect::<Vec<_>>().join(",")
        )
    }

    /// A calendar from [`Calendar::to_json`] output: the built-in 2026 table plus every table given
    /// (a given year replaces the built-in one).
    pub fn from_tables_json(json: &str) -> Result<Calendar, CalendarError> {
        let mut c = Calendar::builtin()?;
        let tables: Vec<serde_json::Value> = serde_json::from_str(json)?;
        for t in tables {
            c.add_year_json(&t.to_string())?;
        }
        Ok(c)
    }

    /// The loaded table of `year`, as published (the built-in one for 2026 unless replaced).
    pub fn year_table(&self, year: i32) -> Option<YearTable> {
        self.tables
            .get(&year)
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// Whether a year's official table is loaded (outside it only weekends count as days off).
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.makeup.contains(&d) {
            return true;
        }
        if self.off.contains(&d) {
            return false;
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The date on which `days` working days are complete, counted from the day after `from`
    /// (the common local rule). `days == 0` gives `from` itself: an immediate item is due the same day.
    pub fn due_date(&self, from: NaiveDate, days: u32) -> NaiveDate {
        let mut d = from;
        let mut left = days;
        while left > 0 {
            d = d + Days::new(1);
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// Working days after `from` up to and including `to` (0 when `to` ≤ `from`).
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        let mut d = from;
        let mut n = 0;
        while d < to {
            d = d + Days::new(1);
            if self.is_working_day(d) {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn makeup_days_work_and_holidays_do_not() {
        let c = Calendar::builtin().unwrap();
        assert!(c.covers(2026));
        assert!(c.is_working_day(date("2026-01-04")), "Sunday makeup day");
        assert!(c.is_working_day(date("2026-02-14")), "Saturday makeup day");
        assert!(!c.is_working_day(date("2026-10-05")), "National Day");
        assert!(!c.is_working_day(date("2026-02-16")), "Spring Festival");
        assert!(c.is_working_day(date("2026-11-27")), "ordinary Friday");
        assert!(!c.is_working_day(date("2026-11-28")), "ordinary Saturday");
    }

    #[test]
    fn due_dates_skip_weekends_and_holidays() {
        let c = Calendar::builtin().unwrap();
        // Friday + 1 working day → Monday.
        assert_eq!(c.due_date(date("2026-11-27"), 1), date("2026-11-30"));
        // Accepted on Tue 2026-09-29, 5 working days: Sep 30, (Oct 1-7 off), Oct 8, 9, 10 (makeup Sat), 12.
        assert_eq!(c.due_date(date("2026-09-29"), 5), date("2026-10-12"));
        // Before Spring Festival: Fri Feb 13 + 2 → Sat Feb 14 (makeup), then Tue Feb 24.
        assert_eq!(c.due_date(date("2026-02-13"), 2), date("2026-02-24"));
        assert_eq!(c.due_date(date("2026-11-27"), 0), date("2026-11-27"));
        assert_eq!(
            c.working_days_between(date("2026-09-29"), date("2026-10-12")),
            5
        );
    }

    #[test]
    fn year_boundaries_use_each_years_table() {
        let mut c = Calendar::builtin().unwrap();
        // Thu 2026-12-31 + 1 working day: without a 2027 table only the weekend is skipped → Fri Jan 1.
        assert_eq!(c.due_date(date("2026-12-31"), 1), date("2027-01-01"));
        assert!(!c.covers(2027));
        let y2027 = r#"{"year":2027,"holidays":[{"name":"元旦","from":"2027-01-01","to":"2027-01-03"}],"makeup_workdays":[]}"#;
        c.add_year_json(y2027).unwrap();
        assert_eq!(c.due_date(date("2026-12-31"), 1), date("2027-01-04"));
        assert_eq!(
            c.working_days_between(date("2026-12-30"), date("2027-01-04")),
            2
        );
        // The tables survive a round trip through what the hub stores and sends.
        let back = Calendar::from_tables_json(&c.to_json()).unwrap();
        assert!(back.covers(2026) && back.covers(2027));
        assert_eq!(back.due_date(date("2026-12-31"), 1), date("2027-01-04"));
    }

    #[test]
    fn inconsistent_tables_are_refused() {
        let mut c = Calendar::default();
        let bad = r#"{"year":2027,"holidays":[{"name":"x","from":"2027-01-03","to":"2027-01-01"}],"makeup_workdays":[]}"#;
        assert!(c.add_year_json(bad).is_err());
        let clash = r#"{"year":2027,"holidays":[{"name":"x","from":"2027-01-01","to":"2027-01-03"}],"makeup_workdays":["2027-01-02"]}"#;
        assert!(c.add_year_json(clash).is_err());
        assert!(!c.covers(2027));
    }
}
