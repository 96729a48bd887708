//! Who this node is (identity, actor id) and the county data it uses (catalogue, calendar), all kept
//! in the `meta` tree. A stored value that does not decode is a fault; offered data that fails its
//! checks, or is not newer, is refused.

use serde::{Deserialize, Serialize};
use tongban_shared::calendar::Calendar;
use tongban_shared::catalog::Catalog;
use tongban_shared::Tier;

use super::error::{corrupt, invalid, Refusal, StoreError};
use super::tables::*;
use super::Store;

/// Who this node is. Set at `init`; later replaced by the enrolment bundle's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub parent: Option<String>,
    /// Upstream sync address; `None` while the node works standalone.
    pub upstream: Option<String>,
    /// TLS server name of the upstream (`hub.tongban`, or a township's name).
    #[serde(default)]
    pub upstream_name: Option<String>,
    /// The hub's address for a village behind a township, used when the township stays unreachable.
    #[serde(default)]
    pub fallback: Option<String>,
    pub created_at: String,
}

impl Store {
    pub fn identity(&self) -> Result<NodeIdentity, StoreError> {
        let raw = self
            .meta
            .get(K_IDENTITY)?
            .ok_or_else(|| corrupt("identity", "missing"))?;
        serde_json::from_slice(&raw).map_err(|e| corrupt("identity", e))
    }

    /// Replaces the identity (enrolment of a standalone node). The code may not change: every case the
    /// node holds is numbered with it.
    pub fn set_identity(&self, identity: &NodeIdentity) -> Result<(), StoreError> {
        let current = self.identity()?;
        if current.code != identity.code {
            return Err(StoreError::Refused(Refusal::WrongNode {
                this: current.code,
                other: identity.code.clone(),
            }));
        }
        let json = serde_json::to_vec(identity).map_err(|e| corrupt("identity", e))?;
        self.meta.insert(K_IDENTITY, json)?;
        self.note_tier(identity.tier);
        self.sync()
    }

    pub(super) fn note_tier(&self, tier: Tier) {
        self.notes_outgoing
            .store(tier != Tier::County, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn actor(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .meta
            .get(K_ACTOR)?
            .ok_or_else(|| corrupt("actor", "missing"))?
            .to_vec())
    }

    /// Sets the automerge actor this store writes with from now on (a standalone node that holds no
    /// case yet takes the one its certificate implies at enrolment). Durable when it returns.
    pub fn set_actor(&self, actor: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(K_ACTOR, actor)?;
        self.sync()
    }

    pub fn catalog(&self) -> Result<Catalog, StoreError> {
        let raw = self
            .meta
            .get(K_CATALOG)?
            .ok_or_else(|| corrupt("catalog", "missing"))?;
        let json = std::str::from_utf8(&raw).map_err(|e| corrupt("catalog", e))?;
        Catalog::from_json(json).map_err(|e| corrupt("catalog", e))
    }

    /// The catalogue as stored (JSON text).
    pub fn catalog_json(&self) -> Result<String, StoreError> {
        let raw = self
            .meta
            .get(K_CATALOG)?
            .ok_or_else(|| corrupt("catalog", "missing"))?;
        String::from_utf8(raw.to_vec()).map_err(|e| corrupt("catalog", e))
    }

    /// Version of the stored catalogue, without parsing all of it.
    pub fn catalog_version(&self) -> Result<u32, StoreError> {
        match self.meta.get(K_CATALOG_VERSION)? {
            Some(v) => Ok(u32::from_be_bytes(
                <[u8; 4]>::try_from(v.as_ref()).map_err(|e| corrupt("catalog_version", e))?,
            )),
            // Stores from before the version key: read it from the catalogue itself.
            None => Ok(self.catalog()?.version),
        }
    }

    /// The catalogue of `version` if this store has held it (or the binary carries it): what a case
    /// filed under that version is checked against.
    pub fn catalog_at(&self, version: u32) -> Result<Option<Catalog>, StoreError> {
        if version == self.catalog_version()? {
            return self.catalog().map(Some);
        }
        if let Some(raw) = self.meta.get(past_catalog_key(version))? {
            let json = std::str::from_utf8(&raw).map_err(|e| corrupt("past catalogue", e))?;
            return Catalog::from_json(json)
                .map(Some)
                .map_err(|e| corrupt("past catalogue", e));
        }
        let builtin = Catalog::builtin().map_err(|e| corrupt("built-in catalogue", e))?;
        Ok((builtin.version == version).then_some(builtin))
    }

    /// Replaces the catalogue with a newer, valid version (durably). An older or equal version, or a
    /// catalogue that fails its checks, is refused and the current one stays.
    pub fn set_catalog(&self, json: &str) -> Result<u32, StoreError> {
        let catalog = Catalog::from_json(json).map_err(|e| invalid("catalogue", e))?;
        let current = self.catalog_version()?;
        if catalog.version <= current {
            return Err(StoreError::Refused(Refusal::NotNewer {
                what: "catalogue",
                offered: catalog.version,
                current,
            }));
        }
        let mut batch = sled::Batch::default();
        // The version it replaces stays readable: cases filed under it are checked against it.
        batch.insert(past_catalog_key(current), self.catalog_json()?.as_bytes());
        batch.insert(K_CATALOG, compact_json(json)?.as_bytes());
        batch.insert(K_CATALOG_VERSION, &catalog.version.to_be_bytes());
        self.meta.apply_batch(batch)?;
        self.note_change(super::changes::Change::County);
        self.sync()?;
        Ok(catalog.version)
    }

    /// The working-day calendar: the built-in table plus every year stored here.
    pub fn calendar(&self) -> Result<Calendar, StoreError> {
        let cal = match self.meta.get(K_CALENDAR)? {
            Some(raw) => {
                let json = std::str::from_utf8(&raw).map_err(|e| corrupt("calendar", e))?;
                Calendar::from_tables_json(json)
            }
            None => Calendar::builtin(),
        };
        cal.map_err(|e| corrupt("calendar", e))
    }

    /// 0 while only the built-in table is used.
    pub fn calendar_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .meta
            .get(K_CALENDAR_VERSION)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0))
    }

    /// Stores calendar tables received from upstream (checked; only a newer version replaces).
    pub fn set_calendar(&self, version: u32, tables_json: &str) -> Result<(), StoreError> {
        Calendar::from_tables_json(tables_json).map_err(|e| invalid("calendar", e))?;
        let current = self.calendar_version()?;
        if version <= current {
            return Err(StoreError::Refused(Refusal::NotNewer {
                what: "calendar",
                offered: version,
                current,
            }));
        }
        let mut batch = sled::Batch::default();
        batch.insert(K_CALENDAR, tables_json.as_bytes());
        batch.insert(K_CALENDAR_VERSION, &version.to_be_bytes());
        self.meta.apply_batch(batch)?;
        self.note_change(super::changes::Change::County);
        self.sync()
    }

    /// The county adds or replaces one year's table; returns the new calendar version.
    pub fn add_calendar_year(&self, year_json: &str) -> Result<u32, StoreError> {
        let mut cal = self.calendar()?;
        cal.add_year_json(year_json)
            .map_err(|e| invalid("calendar year", e))?;
        let version = self.calendar_version()? + 1;
        self.set_calendar(version, &cal.to_json())?;
        Ok(version)
    }
}

/// Meta key of a catalogue version that has been replaced.
fn past_catalog_key(version: u32) -> Vec<u8> {
    let mut key = b"catalog@".to_vec();
    key.extend_from_slice(&version.to_be_bytes());
    key
}

impl Store {
    /// Counts a print of a notice (`what` names the case, the kind and the notice's number) and
    /// returns how many times it had been printed here before: a reprint is marked 补打. Durable
    /// before it returns, so a reprint after a crash is still marked.
    pub fn note_print(&self, what: &str) -> Result<u64, StoreError> {
        let key = format!("printed/{what}").into_bytes();
        let after = self.meta.update_and_fetch(&key, |old| {
            let n = super::keys::read_u64(old.map(sled::IVec::from));
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        self.flush()?;
        Ok(super::keys::read_u64(after).saturating_sub(1))
    }
}

/// The catalogue as stored: its JSON without the layout whitespace (every field kept, known to this
/// build or not, for the nodes it passes the catalogue on to). sled writes a page larger than a
/// quarter of a segment to a blob file that `Store::sync` does not fsync; the built-in catalogue
/// with its manual is 128 KB as laid out and 88 KB compact.
pub(super) fn compact_json(json: &str) -> Result<String, StoreError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid("catalogue", e))?;
    serde_json::to_string(&value).map_err(|e| invalid("catalogue", e))
}
