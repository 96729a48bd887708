//! Reads of the per-scope summary trie that sync reconciles (`sync_roots`, `sync_nodes`,
//! `sync_items`). The trie is written with every case write, in `cases.rs`.

use tongban_shared::sync::summary::{Digest, Fp, Prefix};

use super::error::{corrupt, StoreError};
use super::keys::node_key;
use super::Store;

impl Store {
    /// Root fingerprints of the non-empty scopes whose code starts with `within`.
    pub fn scope_roots(&self, within: &str) -> Result<Vec<(String, Fp)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.sync_roots.scan_prefix(within.as_bytes()) {
            let (k, v) = entry?;
            let fp = Fp::from_bytes(&v).ok_or_else(|| corrupt("sync_roots", "bad fingerprint"))?;
            if !fp.is_empty() {
                out.push((String::from_utf8_lossy(&k).into_owned(), fp));
            }
        }
        Ok(out)
    }

    /// Fingerprint of one summary node.
    pub fn sync_node(&self, scope: &str, prefix: Prefix) -> Result<Fp, StoreError> {
        let raw = if prefix == Prefix::ROOT {
            self.sync_roots.get(scope.as_bytes())?
        } else {
            self.sync_nodes.get(node_key(scope, prefix))?
        };
        match raw {
            None => Ok(Fp::EMPTY),
            Some(v) => Fp::from_bytes(&v).ok_or_else(|| corrupt("sync_nodes", "bad fingerprint")),
        }
    }

    /// Every (case number, heads digest) of a scope below a summary node.
    pub fn sync_items(
        &self,
        scope: &str,
        prefix: Prefix,
    ) -> Result<Vec<(String, Digest)>, StoreError> {
        let (lo, hi) = prefix.range();
        let mut start = scope.as_bytes().to_vec();
        start.push(0);
        let mut end = start.clone();
        start.extend_from_slice(&lo.to_be_bytes());
        match hi {
            Some(hi) => end.extend_from_slice(&hi.to_be_bytes()),
            None => {
                // The top of the range: everything of this scope.
                end.pop();
                end.push(1);
            }
        }
        let mut out = Vec::new();
        for entry in self.sync_items.range(start..end) {
            let (k, v) = entry?;
            let no = k
                .get(scope.len() + 1 + 16..)
                .ok_or_else(|| corrupt("sync_items", "short key"))?;
            let digest: Digest = v
                .as_ref()
                .try_into()
                .map_err(|_| corrupt("sync_items", "bad digest"))?;
            out.push((String::from_utf8_lossy(no).into_owned(), digest));
        }
        Ok(out)
    }

    /// Number of cases in a scope and below it (a township's count includes its villages').
    pub fn cases_in_scope(&self, within: &str) -> Result<u64, StoreError> {
        Ok(self
            .scope_roots(within)?
            .iter()
            .map(|(_, fp)| u64::from(fp.count))
            .sum())
    }
}
