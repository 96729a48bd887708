//! Small text helpers every part of the web app and the tiers' pages use: URL encoding and how a time
//! is shown to a person.

use chrono::DateTime;

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `2026-11-27 10:05` for an RFC 3339 time; the raw text when it does not parse.
pub fn format_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// How long something has waited, as a person says it: `刚刚`, `3小时`, `2天`.
pub fn waited(since_rfc3339: &str, now: DateTime<chrono::FixedOffset>) -> String {
    let Ok(since) = DateTime::parse_from_rfc3339(since_rfc3339) else {
        return String::new();
    };
    let minutes = (now - since).num_minutes().max(0);
    match minutes {
        0..=59 => "不到1小时".to_string(),
        60..=1439 => format!("{}小时", minutes / 60),
        _ => format!("{}天", minutes / 1440),
    }
}
