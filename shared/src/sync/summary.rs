//! Set summaries for reconciliation: a fixed-shape hash trie per scope, maintained incrementally.
//!
//! Every case contributes one *leaf* = H(case number ‖ digest of its automerge heads). Cases are placed
//! by the first nibbles of H(case number) (its *bucket*), which never changes, so a case stays in the same
//! place whatever happens to it. Each trie node stores the XOR of the leaves below it and their count:
//! adding, removing or changing one case touches exactly the [`DEPTH`] + 1 nodes on its path, and two
//! replicas hold the same cases in the same versions exactly when their root fingerprints agree (up to a
//! 2^-128 accident). Replicas compare roots first and descend only into nodes that differ.
//!
//! This module is the reference: the in-memory [`MemSummary`] and the node's and hub's sled trees follow
//! the same rules through [`path`] and [`Fp::toggle`].

use std::collections::BTreeMap;

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Children per trie node (one hex nibble of the bucket).
pub const FANOUT: usize = 16;
/// Levels below the root that are stored; at 16^4 = 65 536 leaf buckets a county of 100 000 cases has
/// about 1.5 cases per leaf.
pub const DEPTH: u8 = 4;
/// A node with at most this many cases is answered with its items rather than its children: listing 16
/// short items costs less than one more round trip.
pub const LEAF_ITEMS: u32 = 16;

/// 128-bit digest (truncated SHA-256).
pub type Digest = [u8; 16];

fn sha16(domain: &[u8], parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    h.update(domain);
    for p in parts {
        h.update((p.len() as u32).to_be_bytes());
        h.update(p);
    }
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Digest of a document's heads (order-independent).
pub fn heads_digest(heads: &[ChangeHash]) -> Digest {
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    let bytes: Vec<&[u8]> = sorted.iter().map(|h| h.as_ref()).collect();
    sha16(b"tongban-heads-v1", &bytes)
}

/// Where a case lives in the trie.
pub fn bucket(case_no: &str) -> Digest {
    sha16(b"tongban-bucket-v1", &[case_no.as_bytes()])
}

/// The contribution of one case in one version to every fingerprint above it.
pub fn leaf(case_no: &str, digest: &Digest) -> Digest {
    sha16(b"tongban-leaf-v1", &[case_no.as_bytes(), digest])
}

/// XOR of leaves and their count: the summary of a set of (case, version) pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fp {
    pub xor: Digest,
    pub count: u32,
}

impl Fp {
    pub const EMPTY: Fp = Fp {
        xor: [0; 16],
        count: 0,
    };

    /// Adds (`add`) or removes a leaf. XOR makes both the same operation on the hash.
    pub fn toggle(&mut self, leaf: &Digest, add: bool) {
        for (a, b) in self.xor.iter_mut().zip(leaf) {
            *a ^= b;
        }
        if add {
            self.count = self.count.saturating_add(1);
        } else {
            self.count = self.count.saturating_sub(1);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Fixed 20-byte form, for storage.
    pub fn to_bytes(self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..16].copy_from_slice(&self.xor);
        b[16..].copy_from_slice(&self.count.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Fp> {
        if b.len() != 20 {
            return None;
        }
        let mut xor = [0u8; 16];
        xor.copy_from_slice(&b[..16]);
        Some(Fp {
            xor,
            count: u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
        })
    }
}

/// A trie node: the first `len` nibbles of a bucket, kept in the high bits of `bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Prefix {
    pub len: u8,
    pub bits: u32,
}

impl Prefix {
    pub const ROOT: Prefix = Prefix { len: 0, bits: 0 };

    /// Whether the prefix is one this protocol version can address (peers may send anything).
    pub fn is_valid(&self) -> bool {
        self.len <= DEPTH && self.bits & !Self::mask(self.len) == 0
    }

    fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - 4 * u32::from(len.min(8)))
        }
    }

    pub fn of(bucket: &Digest, len: u8) -> Prefix {
        let top = u32::from_be_bytes([bucket[0], bucket[1], bucket[2], bucket[3]]);
        Prefix {
            len,
            bits: top & Self::mask(len),
        }
    }

    pub fn child(&self, nibble: u8) -> Prefix {
        let len = self.len + 1;
        Prefix {
            len,
            bits: self.bits | (u32::from(nibble & 0xF) << (32 - 4 * u32::from(len))),
        }
    }

    /// The bucket range `[lo, hi)` of this node on the first 32 bits; `hi` is `None` at the top end.
    pub fn range(&self) -> (u32, Option<u32>) {
        if self.len == 0 {
            return (0, None);
        }
        let step = 1u64 << (32 - 4 * u32::from(self.len));
        let lo = u64::from(self.bits);
        let hi = lo + step;
        (self.bits, u32::try_from(hi).ok())
    }

    /// Storage key: length byte then the bits.
    pub fn key(&self) -> [u8; 5] {
        let b = self.bits.to_be_bytes();
        [self.len, b[0], b[1], b[2], b[3]]
    }
}

/// The root and every node down to [`DEPTH`] that a case in `bucket` contributes to.
pub fn path(bucket: &Digest) -> [Prefix; DEPTH as usize + 1] {
    let mut out = [Prefix::ROOT; DEPTH as usize + 1];
    for (len, slot) in out.iter_mut().enumerate() {
        *slot = Prefix::of(bucket, len as u8);
    }
    out
}

/// In-memory summary of many scopes: the reference implementation, used by the simulator and tests.
#[derive(Debug, Clone, Default)]
pub struct MemSummary {
    nodes: BTreeMap<(String, Prefix), Fp>,
    /// (scope, bucket, case number) → digest of heads.
    items: BTreeMap<(String, Digest, String), Digest>,
    /// case number → (scope, bucket) for updates.
    place: BTreeMap<String, (String, Digest)>,
}

impl MemSummary {
    /// Records that `case_no` in `scope` now has heads digest `digest`.
    pub fn set(&mut self, scope: &str, case_no: &str, digest: Digest) {
        let b = bucket(case_no);
        let key = (scope.to_string(), b, case_no.to_string());
        let old = self.items.insert(key, digest);
        if old == Some(digest) {
            return;
        }
        self.place
            .insert(case_no.to_string(), (scope.to_string(), b));
        for prefix in path(&b) {
            let fp = self.nodes.entry((scope.to_string(), prefix)).or_default();
            if let Some(old) = old {
                fp.toggle(&leaf(case_no, &old), false);
            }
            fp.toggle(&leaf(case_no, &digest), true);
        }
    }

    pub fn digest(&self, case_no: &str) -> Option<Digest> {
        let (scope, b) = self.place.get(case_no)?;
        self.items
            .get(&(scope.clone(), *b, case_no.to_string()))
            .copied()
    }

    pub fn node(&self, scope: &str, prefix: Prefix) -> Fp {
        self.nodes
            .get(&(scope.to_string(), prefix))
            .copied()
            .unwrap_or_default()
    }

    pub fn children(&self, scope: &str, prefix: Prefix) -> Vec<Fp> {
        (0..FANOUT as u8)
            .map(|n| self.node(scope, prefix.child(n)))
            .collect()
    }

    pub fn items(&self, scope: &str, prefix: Prefix) -> Vec<(String, Digest)> {
        self.items
            .iter()
            .filter(|((s, b, _), _)| s == scope && Prefix::of(b, prefix.len) == prefix)
            .map(|((_, _, no), d)| (no.clone(), *d))
            .collect()
    }

    /// Scopes with at least one case whose code starts with one of `within`.
    pub fn scopes(&self, within: &str) -> Vec<(String, Fp)> {
        self.nodes
            .iter()
            .filter(|((s, p), fp)| *p == Prefix::ROOT && s.starts_with(within) && !fp.is_empty())
            .map(|((s, _), fp)| (s.clone(), *fp))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_set_in_any_order_gives_the_same_root() {
        let mut a = MemSummary::default();
        let mut b = MemSummary::default();
        for i in 0..100 {
            a.set("s", &format!("c{i}"), [i as u8; 16]);
        }
        for i in (0..100).rev() {
            b.set("s", &format!("c{i}"), [0xFF; 16]);
            b.set("s", &format!("c{i}"), [i as u8; 16]);
        }
        assert_eq!(a.node("s", Prefix::ROOT), b.node("s", Prefix::ROOT));
        assert_eq!(a.node("s", Prefix::ROOT).count, 100);
        b.set("s", "c5", [0xAA; 16]);
        assert_ne!(a.node("s", Prefix::ROOT), b.node("s", Prefix::ROOT));
    }

    #[test]
    fn children_add_up_to_their_parent() {
        let mut s = MemSummary::default();
        for i in 0..500 {
            s.set("x", &format!("case-{i}"), [7; 16]);
        }
        let root = s.node("x", Prefix::ROOT);
        let mut sum = Fp::EMPTY;
        for child in s.children("x", Prefix::ROOT) {
            sum.count += child.count;
            for (a, b) in sum.xor.iter_mut().zip(child.xor) {
                *a ^= b;
            }
        }
        assert_eq!(sum, root);
        let deep = Prefix::ROOT.child(3).child(9);
        assert_eq!(s.items("x", deep).len() as u32, s.node("x", deep).count);
    }

    #[test]
    fn prefixes_nest_and_ranges_tile() {
        let b = bucket("420222100201-20261127-0001");
        let p = path(&b);
        for w in p.windows(2) {
            let (lo, hi) = w[0].range();
            let (clo, chi) = w[1].range();
            assert!(clo >= lo && chi.unwrap_or(u32::MAX) <= hi.unwrap_or(u32::MAX));
        }
        assert!(p.iter().all(Prefix::is_valid));
        assert!(!Prefix { len: 1, bits: 1 }.is_valid());
        assert!(!Prefix { len: 9, bits: 0 }.is_valid());
        assert_eq!(Prefix::ROOT.child(0xF).range(), (0xF000_0000, None));
    }

    #[test]
    fn fp_bytes_roundtrip() {
        let fp = Fp {
            xor: [3; 16],
            count: 77,
        };
        assert_eq!(Fp::from_bytes(&fp.to_bytes()), Some(fp));
        assert_eq!(Fp::from_bytes(&[0; 3]), None);
    }
}
