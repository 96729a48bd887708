//! Accounts (the `users` tree): name → postcard [`UserRecord`] with an argon2id hash.

use serde::{Deserialize, Serialize};

use super::error::{corrupt, Refusal, StoreError};
use super::Store;

/// One person's account at this tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub display_name: String,
    /// `agent` (代办员) or `clerk` (乡镇窗口); both may take cases at a node.
    pub role: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub created_at: String,
}

/// What a disabled account's hash starts with: no argon2 PHC string does, so no password matches it,
/// and the old hash stays behind it (the record keeps its history without a format change).
const DISABLED_PREFIX: &str = "!disabled:";

impl UserRecord {
    pub fn is_disabled(&self) -> bool {
        self.password_hash.starts_with(DISABLED_PREFIX)
    }

    /// No password logs this account in any more.
    pub fn disable(&mut self) {
        if !self.is_disabled() {
            self.password_hash = format!("{DISABLED_PREFIX}{}", self.password_hash);
        }
    }
}

impl Store {
    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.users
            .iter()
            .map(|entry| {
                let (name, raw) = entry?;
                postcard::from_bytes(&raw)
                    .map_err(|e| corrupt(format!("user {}", String::from_utf8_lossy(&name)), e))
            })
            .collect()
    }

    /// Changes one account durably (`None` when there is none of that name).
    pub fn update_user(
        &self,
        name: &str,
        change: impl Fn(&mut UserRecord),
    ) -> Result<Option<UserRecord>, StoreError> {
        loop {
            let Some(raw) = self.users.get(name.as_bytes())? else {
                return Ok(None);
            };
            let mut user: UserRecord =
                postcard::from_bytes(&raw).map_err(|e| corrupt(format!("user {name}"), e))?;
            change(&mut user);
            let bytes = postcard::to_stdvec(&user).map_err(|e| corrupt(name, e))?;
            // Another change in between: read it and apply ours to that.
            if self
                .users
                .compare_and_swap(name.as_bytes(), Some(raw), Some(bytes))?
                .is_ok()
            {
                self.sync()?;
                return Ok(Some(user));
            }
        }
    }

    pub fn add_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(user).map_err(|e| corrupt(&user.name, e))?;
        self.users
            .compare_and_swap(user.name.as_bytes(), None as Option<&[u8]>, Some(bytes))?
            .map_err(|_| StoreError::Refused(Refusal::Exists(format!("account {}", user.name))))?;
        self.sync()?;
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.users
            .get(name.as_bytes())?
            .map(|raw| postcard::from_bytes(&raw).map_err(|e| corrupt(format!("user {name}"), e)))
            .transpose()
    }
}
