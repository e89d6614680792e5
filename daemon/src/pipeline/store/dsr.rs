//! DSR cases in sled (`consentry-dsr-cases`, case id → sealed case). A case is
//! the officer's working file; its actions are also audit events.

use serde::{Serialize, de::DeserializeOwned};

use super::{Store, StoreError};

const TREE_CASES: &str = "consentry-dsr-cases";

impl Store {
    fn cases_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(TREE_CASES)?)
    }

    pub fn put_case<T: Serialize>(&self, id: &str, case: &T) -> Result<(), StoreError> {
        let tree = self.cases_tree()?;
        let sealed = self.seal(TREE_CASES, id.as_bytes(), case)?;
        tree.insert(id.as_bytes(), sealed)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn case<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        let tree = self.cases_tree()?;
        tree.get(id.as_bytes())?
            .map(|raw| self.unseal(TREE_CASES, id.as_bytes(), &raw))
            .transpose()
    }

    pub fn cases<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let tree = self.cases_tree()?;
        tree.iter()
            .map(|entry| {
                let (key, raw) = entry?;
                self.unseal(TREE_CASES, &key, &raw)
            })
            .collect()
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
