//! Small sealed record trees that need no transaction with other trees: DSR
//! cases (`consentry-dsr-cases`) and console users (`consentry-users`).
//! Each value is sealed under the tree name and its key, so a value moved to
//! another key or tree fails authentication.

use serde::{Serialize, de::DeserializeOwned};

use super::{Store, StoreError};

/// DSR cases: case id → sealed case. A case is the officer's working file;
/// its actions are also audit events.
pub const TREE_CASES: &str = "consentry-dsr-cases";
/// Console users: login name → sealed user (argon2id hash, grants, state).
pub const TREE_USERS: &str = "consentry-users";

impl Store {
    pub fn put_record<T: Serialize>(
        &self,
        tree: &str,
        id: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let sealed = self.seal(tree, id.as_bytes(), value)?;
        self.db.open_tree(tree)?.insert(id.as_bytes(), sealed)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn record<T: DeserializeOwned>(
        &self,
        tree: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        self.db
            .open_tree(tree)?
            .get(id.as_bytes())?
            .map(|raw| self.unseal(tree, id.as_bytes(), &raw))
            .transpose()
    }

    pub fn records<T: DeserializeOwned>(&self, tree: &str) -> Result<Vec<T>, StoreError> {
        self.db
            .open_tree(tree)?
            .iter()
            .map(|entry| {
                let (key, raw) = entry?;
                self.unseal(tree, &key, &raw)
            })
            .collect()
    }

    pub fn put_case<T: Serialize>(&self, id: &str, case: &T) -> Result<(), StoreError> {
        self.put_record(TREE_CASES, id, case)
    }

    pub fn case<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        self.record(TREE_CASES, id)
    }

    pub fn cases<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        self.records(TREE_CASES)
    }
}

impl Store {
    /// Rewrites an existing asset's record (a redaction replaced its content).
    pub fn put_asset_record(&self, asset: &crate::domain::Asset) -> Result<(), StoreError> {
        let key = asset.id.key_bytes();
        if !self.assets.contains_key(&key)? {
            return Err(StoreError::Corrupt(format!(
                "asset {} is not in the catalogue",
                asset.id
            )));
        }
        let sealed = self.seal(super::TREE_ASSETS, &key, asset)?;
        self.assets.insert(key, sealed)?;
        self.db.flush()?;
        Ok(())
    }
}
