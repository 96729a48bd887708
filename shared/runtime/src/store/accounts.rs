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

impl Store {
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
