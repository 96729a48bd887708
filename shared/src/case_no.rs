//! Case numbers: `<node division code>-<yyyymmdd>-<sequence>`, e.g. `420222103201-20261127-0007`.
//!
//! Unique with no coordination because every node has its own division code and allocates its own
//! sequence per day from a persistent counter; at most 12 + 1 + 8 + 1 + 6 characters, within the 50 that
//! GB/T 39046 allows. [`CaseNo`] is a number that has been checked; the text forms below are the one
//! place that knows the shape.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use crate::validate;

/// A checked case number, parsed once where it enters (a URL, a form) and passed on as this type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseNo(String);

impl CaseNo {
    /// Number `seq` of `date` at the node `node_code`.
    pub fn new(node_code: &str, date: NaiveDate, seq: u32) -> CaseNo {
        CaseNo(format!("{node_code}-{}-{seq:04}", date.format("%Y%m%d")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The division code of the node that opened the case (its scope).
    pub fn node_code(&self) -> &str {
        division_code(&self.0).unwrap_or("")
    }
}

/// Why a text is not a case number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("“{0}” is not a case number (<division code>-<yyyymmdd>-<sequence>)")]
pub struct NotACaseNo(pub String);

impl FromStr for CaseNo {
    type Err = NotACaseNo;

    fn from_str(s: &str) -> Result<CaseNo, NotACaseNo> {
        if is_case_no(s) {
            Ok(CaseNo(s.to_string()))
        } else {
            Err(NotACaseNo(s.to_string()))
        }
    }
}

impl fmt::Display for CaseNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CaseNo {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The text of case number `seq` of `date` at `node_code`.
pub fn format_case_no(node_code: &str, date: NaiveDate, seq: u32) -> String {
    CaseNo::new(node_code, date, seq).0
}

/// The division code a case number starts with, if it has the shape of one (the sync scopes read
/// only this part).
pub fn division_code(case_no: &str) -> Option<&str> {
    let code = case_no.split('-').next()?;
    (matches!(code.len(), 6 | 9 | 12) && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The day (`yyyymmdd`) and sequence of a case number, if it has the shape of one: what a node's
/// per-day counter must stay ahead of when its own cases come back to it (a replaced PC).
pub fn day_and_seq(case_no: &str) -> Option<(&str, u32)> {
    if !is_case_no(case_no) {
        return None;
    }
    let mut parts = case_no.split('-').skip(1);
    let day = parts.next()?;
    let seq = parts.next()?.parse().ok()?;
    Some((day, seq))
}

/// Checks the whole shape of a case number before it is used as a store key.
pub fn is_case_no(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(code), Some(date), Some(seq), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    validate::check_division_code(code).is_ok()
        && date.len() == 8
        && NaiveDate::parse_from_str(date, "%Y%m%d").is_ok()
        && (4..=6).contains(&seq.len())
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_parse_once_and_print_as_they_came() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let no = CaseNo::new("420222100201", day, 7);
        assert_eq!(no.to_string(), "420222100201-20261127-0007");
        assert_eq!(no.as_str().parse::<CaseNo>(), Ok(no.clone()));
        assert_eq!(no.node_code(), "420222100201");
        assert!("420222100201-20261327-0007".parse::<CaseNo>().is_err());
        assert!("../etc/passwd".parse::<CaseNo>().is_err());
        assert_eq!(division_code("x-1-2"), None);
    }
}
