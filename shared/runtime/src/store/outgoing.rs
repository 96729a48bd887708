//! Local writes not yet gone up (the `outgoing` tree): noted with every case write at a node, sent
//! first by the next session, cleared once the upstream has them.

use super::error::{corrupt, StoreError};
use super::keys::read_u64;
use super::tables::K_WRITES;
use super::Store;

impl Store {
    /// Notes a case written here for the next session to send first. Called under the write lock,
    /// right after the write's transaction, so the version is that write's.
    pub(super) fn note_outgoing(&self, case_no: &str, new_here: bool) -> Result<(), StoreError> {
        if !self
            .notes_outgoing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        let version = read_u64(self.counters.get(K_WRITES)?);
        let was_new = self
            .outgoing
            .get(case_no.as_bytes())?
            .is_some_and(|v| v.get(8) == Some(&1));
        let mut value = version.to_be_bytes().to_vec();
        value.push(u8::from(new_here || was_new));
        self.outgoing.insert(case_no.as_bytes(), value)?;
        Ok(())
    }

    /// The cases noted by [`Store::note_outgoing`] and not yet cleared.
    pub fn outgoing(&self) -> Result<Vec<tongban_shared::sync::Outgoing>, StoreError> {
        let mut out = Vec::new();
        for entry in self.outgoing.iter() {
            let (k, v) = entry?;
            let version = <[u8; 8]>::try_from(v.get(..8).unwrap_or_default())
                .map(u64::from_be_bytes)
                .map_err(|e| corrupt("outgoing", e))?;
            out.push(tongban_shared::sync::Outgoing {
                case_no: String::from_utf8_lossy(&k).into_owned(),
                version,
                new_here: v.get(8) == Some(&1),
            });
        }
        Ok(out)
    }

    /// Forgets the outgoing entries of writes up to `version` (a later write of the same case stays).
    pub fn clear_outgoing(&self, version: u64) -> Result<(), StoreError> {
        for entry in self.outgoing.iter() {
            let (k, v) = entry?;
            let written = <[u8; 8]>::try_from(v.get(..8).unwrap_or_default())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if written <= version {
                // Only if unchanged since read: a write in between keeps its entry.
                let _ = self.outgoing.compare_and_swap(&k, Some(v), None::<&[u8]>)?;
            }
        }
        Ok(())
    }
}
