//! How large a peer's automerge bytes become once automerge loads them, found before it does.
//!
//! automerge inflates DEFLATE-compressed chunks and columns with no cap: a 4 MiB sync frame of
//! repeated text could become gigabytes in memory. This walks the chunk framing of saved documents,
//! change chunks and bundles (the automerge binary format) and inflates each compressed part into a
//! counter that stops at the cap, so bytes over it are refused without ever being expanded.

use std::io::Read;

use crate::limits::MAX_CASE_BYTES;

/// The most a peer's document (or the changes of one sync message) may inflate to: 6 MiB. A case
/// that used its whole 96 KiB budget on repetitive notes inflates to about 18× its saved size
/// (1.6 MiB, `a_full_case_stays_far_below_the_cap`); 64× leaves room for that, and the 4 MiB frame
/// holds at most about 40 documents of the budget, so one frame inflates to at most about 250 MiB
/// instead of gigabytes.
pub const MAX_INFLATED_BYTES: usize = 64 * MAX_CASE_BYTES;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DEFLATE: u64 = 0b1000;

/// The number of bytes `chunks` (each one or more automerge chunks) occupy once inflated, or why they
/// may not be loaded: over `cap`, or not automerge chunks at all.
pub fn inflated_size<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    cap: usize,
) -> Result<usize, String> {
    let mut total = Counter { total: 0, cap };
    for bytes in chunks {
        let mut r = Reader { bytes, pos: 0 };
        while r.pos < bytes.len() {
            chunk(&mut r, &mut total)?;
        }
    }
    Ok(total.total)
}

/// Why a peer's automerge bytes are refused before loading, in the words a refusal shows.
pub fn check_inflation<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<(), String> {
    inflated_size(chunks, MAX_INFLATED_BYTES).map(|_| ())
}

struct Counter {
    total: usize,
    cap: usize,
}

impl Counter {
    fn add(&mut self, n: usize) -> Result<(), String> {
        self.total = self.total.saturating_add(n);
        if self.total > self.cap {
            return Err(format!(
                "automerge data that would inflate past {} KiB",
                self.cap / 1024
            ));
        }
        Ok(())
    }

    /// Inflates raw DEFLATE `data` into nothing, counting, and stops one byte past the cap.
    fn inflate(&mut self, data: &[u8]) -> Result<(), String> {
        let room = (self.cap - self.total) as u64 + 1;
        let mut limited = flate2::read::DeflateDecoder::new(data).take(room);
        let n = std::io::copy(&mut limited, &mut std::io::sink())
            .map_err(|e| format!("a compressed automerge part does not inflate: {e}"))?;
        self.add(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.bytes.len())
            .ok_or("automerge data cut short")?;
        let part = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(part)
    }

    fn uleb(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("automerge data with an over-long number".into())
    }

    fn rest(&mut self) -> &'a [u8] {
        let part = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        part
    }
}

fn chunk(r: &mut Reader<'_>, total: &mut Counter) -> Result<(), String> {
    let start = r.pos;
    if r.take(4)? != MAGIC {
        return Err("not an automerge chunk".into());
    }
    r.take(4)?; // checksum, which automerge verifies itself
    let kind = r.take(1)?[0];
    let len = r.uleb()?;
    let data = r.take(len)?;
    total.add(r.pos - start)?;
    let mut body = Reader {
        bytes: data,
        pos: 0,
    };
    match kind {
        // A document: actors, heads, then change and op columns, each possibly compressed.
        0 => {
            skip_actors(&mut body)?;
            skip_hashes(&mut body)?;
            let changes = columns(&mut body)?;
            let ops = columns(&mut body)?;
            total.add(body.pos)?;
            column_data(&mut body, &changes, total)?;
            column_data(&mut body, &ops, total)?;
            total.add(body.rest().len())
        }
        // An uncompressed change.
        1 => total.add(data.len()),
        // A whole change, compressed.
        2 => total.inflate(data),
        // A bundle of changes: dependencies, actors, then change and op columns.
        3 => {
            skip_hashes(&mut body)?;
            skip_actors(&mut body)?;
            let changes = columns(&mut body)?;
            total.add(body.pos)?;
            column_data(&mut body, &changes, total)?;
            let before = body.pos;
            let ops = columns(&mut body)?;
            total.add(body.pos - before)?;
            column_data(&mut body, &ops, total)?;
            total.add(body.rest().len())
        }
        other => Err(format!("automerge chunk of unknown type {other}")),
    }
}

fn skip_actors(r: &mut Reader<'_>) -> Result<(), String> {
    for _ in 0..r.uleb()? {
        let len = r.uleb()?;
        r.take(len)?;
    }
    Ok(())
}

fn skip_hashes(r: &mut Reader<'_>) -> Result<(), String> {
    let count = r.uleb()?;
    r.take(count.checked_mul(32).ok_or("automerge data cut short")?)?;
    Ok(())
}

/// Column metadata: (compressed, length) of each column.
fn columns(r: &mut Reader<'_>) -> Result<Vec<(bool, u64)>, String> {
    let count = r.uleb()?;
    // Each column takes at least two bytes of metadata: a count beyond that is a lie.
    if count > (r.bytes.len() - r.pos) as u64 / 2 {
        return Err("automerge data cut short".into());
    }
    (0..count)
        .map(|_| Ok((r.uleb()? & DEFLATE != 0, r.uleb()?)))
        .collect()
}

fn column_data(
    r: &mut Reader<'_>,
    columns: &[(bool, u64)],
    total: &mut Counter,
) -> Result<(), String> {
    for &(compressed, len) in columns {
        let data = r.take(len)?;
        if compressed {
            total.inflate(data)?;
        } else {
            total.add(data.len())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{sync, sync::SyncDoc, transaction::Transactable, AutoCommit, ReadDoc, ROOT};

    fn doc_with_text(len: usize) -> AutoCommit {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "note", "办".repeat(len / 3)).unwrap();
        doc
    }

    #[test]
    fn a_document_that_inflates_past_the_cap_is_refused_before_loading() {
        // 12 MiB of one character compresses to a few KiB: small enough for every size check on
        // the bytes, and twice the cap once loaded.
        let mut bomb = doc_with_text(12 << 20);
        let saved = bomb.save();
        assert!(saved.len() < MAX_CASE_BYTES, "{} bytes", saved.len());
        let why = check_inflation([saved.as_slice()]).unwrap_err();
        assert!(why.contains("inflate past"), "{why}");
        // The same as changes in a sync message to a peer that has none of them.
        let mut ours = AutoCommit::new();
        let (mut our_state, mut bomb_state) = (sync::State::new(), sync::State::new());
        let hello = ours.sync().generate_sync_message(&mut our_state).unwrap();
        bomb.sync()
            .receive_sync_message(&mut bomb_state, hello)
            .unwrap();
        let changes = bomb
            .sync()
            .generate_sync_message(&mut bomb_state)
            .unwrap()
            .changes;
        assert!(!changes.is_empty());
        assert!(check_inflation(changes.iter()).is_err());
    }

    #[test]
    fn a_full_case_stays_far_below_the_cap() {
        // Many small edits of varied text, as a case that used its whole budget would hold.
        let mut doc = AutoCommit::new();
        let list = doc
            .put_object(ROOT, "events", automerge::ObjType::List)
            .unwrap();
        let mut i = 0;
        while i % 64 != 0 || doc.save().len() < MAX_CASE_BYTES - 4096 {
            let event = doc
                .insert_object(&list, i, automerge::ObjType::Map)
                .unwrap();
            doc.put(&event, "kind", "note").unwrap();
            doc.put(
                &event,
                "at",
                format!("2026-12-{:02}T10:{:02}:00+08:00", i % 28 + 1, i % 60),
            )
            .unwrap();
            doc.put(
                &event,
                "note",
                format!("第{i}次补正：{}", "材料".repeat(i % 40)),
            )
            .unwrap();
            doc.commit();
            i += 1;
        }
        let saved = doc.save();
        let inflated = inflated_size([saved.as_slice()], usize::MAX).unwrap();
        assert!(
            inflated * 3 < MAX_INFLATED_BYTES,
            "{} saved bytes inflate to {inflated}",
            saved.len()
        );
        assert!(check_inflation([saved.as_slice()]).is_ok());
        assert_eq!(
            AutoCommit::load(&saved).unwrap().length(&list),
            i,
            "the walk did not disturb the bytes"
        );
    }

    #[test]
    fn what_is_not_automerge_is_refused_without_a_panic() {
        for bytes in [
            &b""[..],
            b"\x85\x6f\x4a\x83",
            b"\x85\x6f\x4a\x83\0\0\0\0\x00\xff\xff\xff\xff\x0f",
            b"garbage",
            b"\x85\x6f\x4a\x83\0\0\0\0\x02\x03\xff\xff\xff",
        ] {
            if bytes.is_empty() {
                assert_eq!(inflated_size([bytes], 10).unwrap(), 0);
            } else {
                assert!(
                    inflated_size([bytes], MAX_INFLATED_BYTES).is_err(),
                    "{bytes:?}"
                );
            }
        }
    }
}
