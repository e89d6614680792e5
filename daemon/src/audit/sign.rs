//! The checkpoint signing key (Ed25519) and signed checkpoints.
//!
//! The key file holds the 32-byte seed in hex, mode 0600, and lives apart from
//! `store.data_dir` (`audit.signing_key_file`), so whoever can rewrite the
//! catalogue cannot also re-sign its checkpoints. A third party who keeps the
//! public key and exported checkpoints can check that nothing up to a
//! checkpoint was rewritten later.

use std::path::Path;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::AuditError;
use crate::pipeline::store::crypto::{fill_random, hex_decode, hex_encode};

/// A signed (sequence number, hash) of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub at_ms: u64,
    /// The signer's public key, hex.
    pub public_key: String,
    /// Ed25519 over [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    pub fn message(seq: u64, hash: &str, at_ms: u64) -> Vec<u8> {
        format!("consentry audit checkpoint v1\n{seq}\n{hash}\n{at_ms}\n").into_bytes()
    }

    /// Whether the signature is valid for `public_key` (hex).
    pub fn signed_by(&self, public_key: &str) -> bool {
        let (Some(pk), Some(sig)) = (hex_decode(public_key), hex_decode(&self.signature)) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, pk)
            .verify(&Checkpoint::message(self.seq, &self.hash, self.at_ms), &sig)
            .is_ok()
    }
}

pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    pub fn load_or_create(path: &Path) -> Result<SigningKey, AuditError> {
        let err = |reason: String| AuditError::Key {
            path: path.display().to_string(),
            reason,
        };
        let seed = match std::fs::read_to_string(path) {
            Ok(text) => hex_decode(text.trim())
                .filter(|s| s.len() == 32)
                .ok_or_else(|| err("expected 64 hex digits (an Ed25519 seed)".into()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                fill_random(&mut seed).map_err(|e| err(e.to_string()))?;
                write_new(path, &hex_encode(&seed)).map_err(|e| {
                    err(format!(
                        "cannot create it ({e}); create its folder or set audit.signing_key_file"
                    ))
                })?;
                log::info!(target: "consentry::audit", path = path.display().to_string().as_str(); "created the audit signing key");
                seed.to_vec()
            }
            Err(e) => {
                return Err(err(format!(
                    "{e}; the service user must be able to read it"
                )));
            }
        };
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| err(format!("not a valid Ed25519 seed: {e}")))?;
        Ok(SigningKey { pair })
    }

    pub fn public_hex(&self) -> String {
        hex_encode(self.pair.public_key().as_ref())
    }

    pub fn sign(&self, seq: u64, hash: &str, at_ms: u64) -> Checkpoint {
        let signature = self.pair.sign(&Checkpoint::message(seq, hash, at_ms));
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            at_ms,
            public_key: self.public_hex(),
            signature: hex_encode(signature.as_ref()),
        }
    }
}

/// Creates `path` with `text`, mode 0600, failing if it exists.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}
