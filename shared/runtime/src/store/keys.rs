//! How keys and small values are encoded in the trees (see `tables.rs` for which tree holds what).

use tongban_shared::case::CaseSummary;
use tongban_shared::sync::summary::{Digest, Prefix};

use super::error::{corrupt, StoreError};

/// Sort key that makes sled's ascending order newest-first: created time flipped, then the case number
/// with every byte flipped, so that cases of the same millisecond also come newest (highest number) first.
pub(super) fn created_key(created_ms: i64, case_no: &str) -> Vec<u8> {
    let flipped = (i64::MAX - created_ms).to_be_bytes();
    let mut k = Vec::with_capacity(8 + case_no.len());
    k.extend_from_slice(&flipped);
    k.extend(case_no.bytes().map(|b| !b));
    k
}

/// The case number inside a [`created_key`].
pub(super) fn case_no_of_created_key(key: &[u8]) -> Result<String, StoreError> {
    let bytes: Vec<u8> = key
        .get(8..)
        .unwrap_or_default()
        .iter()
        .map(|b| !b)
        .collect();
    String::from_utf8(bytes).map_err(|e| corrupt("by_created", e))
}

pub(super) fn state_key(state: &str, created: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(state.len() + 1 + created.len());
    k.extend_from_slice(state.as_bytes());
    k.push(0);
    k.extend_from_slice(created);
    k
}

/// Prefix of one station's to-do items of `kind` in `by_todo`.
pub(super) fn todo_prefix(station: &str, kind: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(station.len() + kind.len() + 2);
    k.extend_from_slice(station.as_bytes());
    k.push(0);
    k.extend_from_slice(kind.as_bytes());
    k.push(0);
    k
}

/// Key of a case in the to-do index: the station that took it (the case number's division code),
/// the kind, then the time it has waited since (oldest first). A station's inbox is one prefix scan,
/// however many cases of other stations the store holds (the hub holds the county's).
pub(super) fn todo_key(kind: &str, since_rfc3339: &str, case_no: &str) -> Vec<u8> {
    let since = chrono::DateTime::parse_from_rfc3339(since_rfc3339)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let station = case_no.split('-').next().unwrap_or("");
    let mut k = todo_prefix(station, kind);
    k.extend_from_slice(&since.to_be_bytes());
    k.extend_from_slice(case_no.as_bytes());
    k
}

pub(super) fn count_key(state: &str) -> Vec<u8> {
    format!("count/{state}").into_bytes()
}

pub(super) fn read_u64(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn node_key(scope: &str, prefix: Prefix) -> Vec<u8> {
    let mut k = scope.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&prefix.key());
    k
}

pub(super) fn item_key(scope: &str, bucket: &Digest, case_no: &str) -> Vec<u8> {
    let mut k = scope.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(bucket);
    k.extend_from_slice(case_no.as_bytes());
    k
}

pub(super) fn cases_last_key(cases: &[CaseSummary]) -> Vec<u8> {
    cases
        .last()
        .map(|c| created_key(c.created_ms, &c.case_no))
        .unwrap_or_default()
}
