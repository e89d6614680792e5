//! Keys and authenticated encryption for everything the store writes.
//!
//! Input: the master key (a 0600 file or a systemd credential). Output: a
//! [`Keyring`] that wraps per-asset data keys, seals catalogue records and
//! encrypts blobs in a chunked stream. Failure modes: a missing, unreadable,
//! too-open or malformed key file, and authentication failures (wrong key or
//! tampered data), all reported as [`CryptoError`].
//!
//! Design:
//! - Every asset gets a random 256-bit data key. Its original, thumbnails and
//!   sidecar are encrypted with it; the data key is stored only wrapped by the
//!   master key. Destroying the wrapped key makes every copy of the ciphertext,
//!   backups included, unreadable (crypto-shredding).
//! - Blobs use XChaCha20-Poly1305 in the STREAM construction: 64 KiB chunks,
//!   nonce = 16-byte random prefix ‖ chunk counter ‖ last-chunk flag, the
//!   header as associated data. Truncation, reordering and swapping blobs
//!   between records all fail authentication.
//! - Catalogue values are sealed under a key derived from the master key, so the
//!   sled files hold no plaintext personal data (paths, names, GPS).

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Plaintext bytes per STREAM chunk.
pub const CHUNK_LEN: usize = 64 * 1024;
const BLOB_MAGIC: &[u8; 8] = b"CSTRBLB1";
const BLOB_HEADER_LEN: usize = 8 + 16 + 16;
const SEALED_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "master key file {path} not found; create one with `consentry keygen {path}` (and keep a backup apart from the data)"
    )]
    KeyMissing { path: PathBuf },
    #[error("cannot read master key file {path}: {source}")]
    KeyUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "master key file {path} is readable by other users (mode {mode:04o}); run `chmod 600 {path}`"
    )]
    KeyTooOpen { path: PathBuf, mode: u32 },
    #[error("master key file {path} must hold 32 bytes, raw or as 64 hex digits; found {found}")]
    KeyMalformed { path: PathBuf, found: String },
    #[error("decryption failed for {what}: wrong master key or tampered data")]
    Authentication { what: String },
    #[error("encrypted {what} is malformed: {detail}")]
    Malformed { what: String, detail: String },
    #[error("system random number generator failed: {0}")]
    Random(String),
}

/// A 256-bit key that is wiped from memory when dropped and never printed.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub fn random() -> Result<SecretKey, CryptoError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut key[..])?;
        Ok(SecretKey(key))
    }

    fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        SecretKey(Zeroizing::new(bytes))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    fn derive(&self, context: &str) -> SecretKey {
        SecretKey::from_bytes(blake3::derive_key(context, &self.0[..]))
    }
}

pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|err| CryptoError::Random(err.to_string()))
}

/// Where the master key came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Credential(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "key file {}", path.display()),
            KeySource::Credential(path) => write!(f, "systemd credential {}", path.display()),
        }
    }
}

/// Reads the master key: the systemd credential when `$CREDENTIALS_DIRECTORY`
/// holds one named `credential`, else `key_file`, which must be mode 0600 or
/// stricter.
pub fn load_master_key(
    key_file: &Path,
    credential: &str,
) -> Result<(SecretKey, KeySource), CryptoError> {
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(credential);
        if path.exists() {
            // systemd owns the credential directory's permissions.
            let key = read_key_file(&path)?;
            return Ok((key, KeySource::Credential(path)));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(key_file) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(CryptoError::KeyMissing {
                path: key_file.to_owned(),
            });
        }
        Err(source) => {
            return Err(CryptoError::KeyUnreadable {
                path: key_file.to_owned(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::KeyTooOpen {
            path: key_file.to_owned(),
            mode,
        });
    }
    Ok((
        read_key_file(key_file)?,
        KeySource::File(key_file.to_owned()),
    ))
}

fn read_key_file(path: &Path) -> Result<SecretKey, CryptoError> {
    let raw = Zeroizing::new(
        std::fs::read(path).map_err(|source| CryptoError::KeyUnreadable {
            path: path.to_owned(),
            source,
        })?,
    );
    let malformed = |found: String| CryptoError::KeyMalformed {
        path: path.to_owned(),
        found,
    };
    if raw.len() == KEY_LEN {
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&raw);
        return Ok(SecretKey::from_bytes(bytes));
    }
    let text = std::str::from_utf8(&raw)
        .map_err(|_| malformed(format!("{} bytes of binary data", raw.len())))?;
    let hex = text.trim();
    if hex.len() != 2 * KEY_LEN {
        return Err(malformed(format!("{} characters of text", hex.len())));
    }
    let mut bytes = [0u8; KEY_LEN];
    for (idx, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * idx..2 * idx + 2], 16)
            .map_err(|_| malformed("text that is not hexadecimal".to_owned()))?;
    }
    let key = SecretKey::from_bytes(bytes);
    bytes.zeroize();
    Ok(key)
}

/// Creates a new master key file (64 hex digits, mode 0600). Refuses to
/// overwrite an existing file: a lost master key means a lost photo store.
pub fn generate_key_file(path: &Path) -> Result<(), std::io::Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = SecretKey::random().map_err(std::io::Error::other)?;
    let mut hex = Zeroizing::new(String::with_capacity(2 * KEY_LEN + 1));
    for byte in key.0.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(hex.as_bytes())?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// All keys derived from one master key.
#[derive(Clone)]
pub struct Keyring {
    master: SecretKey,
    records: SecretKey,
    index: SecretKey,
}

/// A per-asset data key as stored: wrapped by the master key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrappedKey(#[serde(with = "hex_bytes")] pub Vec<u8>);

impl Keyring {
    pub fn new(master: SecretKey) -> Keyring {
        let records = master.derive("consentry 2026-11 catalogue record sealing key v1");
        let index = master.derive("consentry 2026-11 catalogue index key v1");
        Keyring {
            master,
            records,
            index,
        }
    }

    /// A public, non-secret fingerprint that identifies the master key; stored
    /// beside the data so a wrong key is caught before anything is touched.
    pub fn fingerprint(&self) -> String {
        let check = self
            .master
            .derive("consentry 2026-11 master key fingerprint v1");
        hex_encode(&check.0[..16])
    }

    /// A keyed hash for index keys that must not reveal what they index (paths).
    pub fn index_key(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.index.0);
        for part in parts {
            hasher.update(&(part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        *hasher.finalize().as_bytes()
    }

    pub fn new_data_key(&self, asset_id: &str) -> Result<(SecretKey, WrappedKey), CryptoError> {
        let data_key = SecretKey::random()?;
        let wrapped = seal(&self.master, &data_key.0[..], &wrap_aad(asset_id))?;
        Ok((data_key, WrappedKey(wrapped)))
    }

    pub fn unwrap_data_key(
        &self,
        asset_id: &str,
        wrapped: &WrappedKey,
    ) -> Result<SecretKey, CryptoError> {
        let what = || format!("the data key of asset {asset_id}");
        let plain = Zeroizing::new(open(&self.master, &wrapped.0, &wrap_aad(asset_id), what)?);
        let bytes: [u8; KEY_LEN] = plain[..].try_into().map_err(|_| CryptoError::Malformed {
            what: what(),
            detail: format!("{} bytes", plain.len()),
        })?;
        Ok(SecretKey::from_bytes(bytes))
    }

    /// Seals a catalogue value; `context` (tree and key) is bound as associated data.
    pub fn seal_record(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.records, plain, context)
    }

    pub fn open_record(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.records, sealed, context, || {
            "a catalogue record".to_owned()
        })
    }

    /// Seals a table of numbered keys (the template vault's key file).
    pub fn seal_key_table(
        &self,
        context: &[u8],
        header: &[u8],
        keys: &std::collections::BTreeMap<u32, SecretKey>,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(
            4 + header.len() + keys.len() * (4 + KEY_LEN),
        ));
        plain.extend_from_slice(&(header.len() as u32).to_be_bytes());
        plain.extend_from_slice(header);
        for (slot, key) in keys {
            plain.extend_from_slice(&slot.to_be_bytes());
            plain.extend_from_slice(&key.0[..]);
        }
        seal(&self.master, &plain, context)
    }

    /// Opens what [`Keyring::seal_key_table`] sealed: (header, keys).
    pub fn open_key_table(
        &self,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<(Vec<u8>, std::collections::BTreeMap<u32, SecretKey>), CryptoError> {
        let what = || "the template key file".to_owned();
        let plain = Zeroizing::new(open(&self.master, sealed, context, what)?);
        let malformed = || CryptoError::Malformed {
            what: what(),
            detail: "bad length".into(),
        };
        let header_len = u32::from_be_bytes(
            plain
                .get(..4)
                .ok_or_else(malformed)?
                .try_into()
                .map_err(|_| malformed())?,
        ) as usize;
        let header = plain.get(4..4 + header_len).ok_or_else(malformed)?.to_vec();
        let body = &plain[4 + header_len..];
        if body.len() % (4 + KEY_LEN) != 0 {
            return Err(malformed());
        }
        let mut keys = std::collections::BTreeMap::new();
        for entry in body.chunks_exact(4 + KEY_LEN) {
            let slot = u32::from_be_bytes(entry[..4].try_into().map_err(|_| malformed())?);
            let bytes: [u8; KEY_LEN] = entry[4..].try_into().map_err(|_| malformed())?;
            keys.insert(slot, SecretKey::from_bytes(bytes));
        }
        Ok((header, keys))
    }
}

/// Seals `plain` under `key` (XChaCha20-Poly1305, random nonce) with `aad` bound.
pub fn seal_with(key: &SecretKey, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    seal(key, plain, aad)
}

/// Opens what [`seal_with`] sealed; `what` names it in the error.
pub fn open_with(
    key: &SecretKey,
    sealed: &[u8],
    aad: &[u8],
    what: impl Fn() -> String,
) -> Result<Vec<u8>, CryptoError> {
    open(key, sealed, aad, what)
}

fn wrap_aad(asset_id: &str) -> Vec<u8> {
    format!("consentry data key v1:{asset_id}").into_bytes()
}

fn seal(key: &SecretKey, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let ciphertext = key
        .cipher()
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| CryptoError::Malformed {
            what: "a record".into(),
            detail: "encryption failed".into(),
        })?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(SEALED_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn open(
    key: &SecretKey,
    sealed: &[u8],
    aad: &[u8],
    what: impl Fn() -> String,
) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEALED_VERSION {
        return Err(CryptoError::Malformed {
            what: what(),
            detail: "unknown format or too short".into(),
        });
    }
    key.cipher()
        .decrypt(
            XNonce::from_slice(&sealed[1..=NONCE_LEN]),
            Payload {
                msg: &sealed[1 + NONCE_LEN..],
                aad,
            },
        )
        .map_err(|_| CryptoError::Authentication { what: what() })
}

/// Encrypts `plain` as a blob whose identity `blob_id` is bound into every chunk.
pub fn encrypt_blob(
    data_key: &SecretKey,
    blob_id: &[u8; 16],
    plain: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut prefix = [0u8; 16];
    fill_random(&mut prefix)?;
    let mut header = [0u8; BLOB_HEADER_LEN];
    header[..8].copy_from_slice(BLOB_MAGIC);
    header[8..24].copy_from_slice(blob_id);
    header[24..].copy_from_slice(&prefix);
    let n_chunks = plain.len().div_ceil(CHUNK_LEN).max(1);
    let mut out = Vec::with_capacity(BLOB_HEADER_LEN + plain.len() + n_chunks * TAG_LEN);
    out.extend_from_slice(&header);
    let cipher = data_key.cipher();
    for chunk_idx in 0..n_chunks {
        let start = chunk_idx * CHUNK_LEN;
        let end = (start + CHUNK_LEN).min(plain.len());
        let nonce = chunk_nonce(&prefix, chunk_idx, chunk_idx + 1 == n_chunks)?;
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain[start..end],
                    aad: &header,
                },
            )
            .map_err(|_| CryptoError::Malformed {
                what: "a blob".into(),
                detail: "encryption failed".into(),
            })?;
        out.extend_from_slice(&ct);
    }
    Ok(out)
}

pub fn decrypt_blob(
    data_key: &SecretKey,
    blob_id: &[u8; 16],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let what = || format!("blob {}", hex_encode(blob_id));
    if sealed.len() < BLOB_HEADER_LEN + TAG_LEN || &sealed[..8] != BLOB_MAGIC {
        return Err(CryptoError::Malformed {
            what: what(),
            detail: "not a consentry blob".into(),
        });
    }
    let header = &sealed[..BLOB_HEADER_LEN];
    if &header[8..24] != blob_id {
        return Err(CryptoError::Authentication { what: what() });
    }
    let prefix: [u8; 16] = header[24..].try_into().expect("header slice is 16 bytes");
    let body = &sealed[BLOB_HEADER_LEN..];
    let n_chunks = body.len().div_ceil(CHUNK_LEN + TAG_LEN);
    let mut out = Vec::with_capacity(body.len());
    let cipher = data_key.cipher();
    for chunk_idx in 0..n_chunks {
        let start = chunk_idx * (CHUNK_LEN + TAG_LEN);
        let end = (start + CHUNK_LEN + TAG_LEN).min(body.len());
        let nonce = chunk_nonce(&prefix, chunk_idx, chunk_idx + 1 == n_chunks)?;
        let plain = cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &body[start..end],
                    aad: header,
                },
            )
            .map_err(|_| CryptoError::Authentication { what: what() })?;
        out.extend_from_slice(&plain);
    }
    Ok(out)
}

fn chunk_nonce(
    prefix: &[u8; 16],
    chunk_idx: usize,
    last: bool,
) -> Result<[u8; NONCE_LEN], CryptoError> {
    let counter = u32::try_from(chunk_idx).map_err(|_| CryptoError::Malformed {
        what: "a blob".into(),
        detail: "too many chunks".into(),
    })?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..16].copy_from_slice(prefix);
    nonce[16..20].copy_from_slice(&counter.to_be_bytes());
    nonce[20] = u8::from(last);
    Ok(nonce)
}

pub fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&super::hex_encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(de)?;
        super::hex_decode(&text).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(SecretKey::random().unwrap())
    }

    #[test]
    fn blob_round_trip_at_chunk_boundaries() {
        let key = SecretKey::random().unwrap();
        let id = [7u8; 16];
        for len in [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            3 * CHUNK_LEN + 17,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = encrypt_blob(&key, &id, &plain).unwrap();
            assert_eq!(
                decrypt_blob(&key, &id, &sealed).unwrap(),
                plain,
                "len {len}"
            );
        }
    }

    #[test]
    fn blob_truncation_swap_and_tamper_are_detected() {
        let key = SecretKey::random().unwrap();
        let id = [1u8; 16];
        let plain = vec![42u8; 2 * CHUNK_LEN + 100];
        let sealed = encrypt_blob(&key, &id, &plain).unwrap();
        // Dropping the last chunk leaves a valid-looking prefix: the last-chunk flag catches it.
        let cut = BLOB_HEADER_LEN + 2 * (CHUNK_LEN + TAG_LEN);
        assert!(matches!(
            decrypt_blob(&key, &id, &sealed[..cut]),
            Err(CryptoError::Authentication { .. })
        ));
        assert!(
            decrypt_blob(&key, &[2u8; 16], &sealed).is_err(),
            "a blob must not open under another id"
        );
        let mut flipped = sealed.clone();
        flipped[BLOB_HEADER_LEN + 5] ^= 1;
        assert!(decrypt_blob(&key, &id, &flipped).is_err());
        assert!(decrypt_blob(&SecretKey::random().unwrap(), &id, &sealed).is_err());
    }

    #[test]
    fn data_keys_wrap_per_asset_and_fail_under_another_master() {
        let ring = keyring();
        let (data_key, wrapped) = ring.new_data_key("abc").unwrap();
        assert_eq!(
            ring.unwrap_data_key("abc", &wrapped).unwrap().0[..],
            data_key.0[..]
        );
        assert!(
            ring.unwrap_data_key("abd", &wrapped).is_err(),
            "a wrapped key is bound to its asset"
        );
        assert!(keyring().unwrap_data_key("abc", &wrapped).is_err());
    }

    #[test]
    fn records_are_bound_to_their_context() {
        let ring = keyring();
        let sealed = ring.seal_record(b"assets/1", b"{\"x\":1}").unwrap();
        assert_eq!(
            ring.open_record(b"assets/1", &sealed).unwrap(),
            b"{\"x\":1}"
        );
        assert!(ring.open_record(b"assets/2", &sealed).is_err());
        assert!(!sealed.windows(7).any(|w| w == b"{\"x\":1}"));
    }

    #[test]
    fn key_files_hex_raw_modes_and_errors() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        generate_key_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            generate_key_file(&path).is_err(),
            "never overwrite a master key"
        );
        let (key, source) = load_master_key(&path, "none").unwrap();
        assert_eq!(source, KeySource::File(path.clone()));
        let fingerprint = Keyring::new(key).fingerprint();
        assert_eq!(
            Keyring::new(load_master_key(&path, "none").unwrap().0).fingerprint(),
            fingerprint
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_master_key(&path, "none").unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");

        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [9u8; 32]).unwrap();
        std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o600)).unwrap();
        load_master_key(&raw, "none").unwrap();

        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not a key\n").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_master_key(&bad, "none"),
            Err(CryptoError::KeyMalformed { .. })
        ));
        assert!(matches!(
            load_master_key(&dir.path().join("nope"), "none"),
            Err(CryptoError::KeyMissing { .. })
        ));
    }

    #[test]
    fn index_keys_are_keyed_and_unambiguous() {
        let ring = keyring();
        assert_ne!(
            ring.index_key(&[b"ab", b"c"]),
            ring.index_key(&[b"a", b"bc"])
        );
        assert_ne!(ring.index_key(&[b"x"]), keyring().index_key(&[b"x"]));
    }
}
