//! The rights records: consents (model releases), licences and restrictions.
//!
//! Every record is a *version*: a change is written as a new version with the
//! time it was recorded, never an edit in place. The state on any past
//! instant is therefore the latest version of each record recorded before it
//! ([`latest_known`]), which is how "was this allowed when we published it?"
//! is answered.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::domain::{AssetId, BlobRef, PersonId};
use crate::pipeline::store::crypto::WrappedKey;

/// A random record id (16 hex digits), e.g. the release id written to
/// `plus:ModelReleaseID`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsentId(pub String);

impl ConsentId {
    pub fn random() -> Result<ConsentId, crate::pipeline::store::crypto::CryptoError> {
        let mut bytes = [0u8; 8];
        crate::pipeline::store::crypto::fill_random(&mut bytes)?;
        Ok(ConsentId(crate::pipeline::store::crypto::hex_encode(
            &bytes,
        )))
    }

    pub fn parse(text: &str) -> Option<ConsentId> {
        let t = text.trim().to_ascii_lowercase();
        (t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(ConsentId(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConsentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who signed a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Signer {
    /// The person shown.
    Subject,
    /// A parent or guardian, for a minor.
    Guardian { name: String },
}

/// A withdrawal (GDPR Art. 7(3)): effective from `at`, for the future.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub at: Timestamp,
    pub reason: String,
}

/// A signed document (scan or PDF), stored encrypted like an original under
/// its own data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub name: String,
    pub mime: String,
    pub bytes: u64,
    /// BLAKE3 of the plaintext, to show the document is the one recorded.
    pub blake3: String,
    pub blob: BlobRef,
    pub key: WrappedKey,
}

/// One version of a consent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub id: ConsentId,
    /// 1 for the first version.
    pub version: u32,
    pub person: PersonId,
    pub signer: Signer,
    pub signed_on: Date,
    /// Purposes covered (from `consent.purposes`).
    pub purposes: BTreeSet<String>,
    /// Whether it covers face recognition: the GDPR Art. 9 basis.
    pub recognition: bool,
    /// First day it is valid (inclusive, in `consent.time_zone`).
    pub valid_from: Date,
    /// Last day it is valid (inclusive); `None`: until withdrawn.
    pub valid_until: Option<Date>,
    pub withdrawn: Option<Withdrawal>,
    pub document: Option<DocumentRef>,
    /// The organisation's own reference for the paper (form number...).
    pub reference: Option<String>,
    pub notes: Option<String>,
    pub recorded_at: Timestamp,
    pub recorded_by: String,
    /// What this version changed, in words ("recorded", "withdrawn: ...").
    pub change: String,
}

impl Consent {
    /// The local day (in `tz`) from which the withdrawal counts, if withdrawn.
    pub fn withdrawn_from(&self, tz: &jiff::tz::TimeZone) -> Option<Date> {
        self.withdrawn
            .as_ref()
            .map(|w| w.at.to_zoned(tz.clone()).date())
    }

    /// Withdrawn on or before `date`.
    pub fn withdrawn_by(&self, date: Date, tz: &jiff::tz::TimeZone) -> bool {
        self.withdrawn_from(tz).is_some_and(|d| d <= date)
    }

    /// Not withdrawn by `date`, and `date` within valid-from..valid-until.
    pub fn in_force_on(&self, date: Date, tz: &jiff::tz::TimeZone) -> bool {
        !self.withdrawn_by(date, tz)
            && self.valid_from <= date
            && self.valid_until.is_none_or(|u| u >= date)
    }
}

/// What a licence applies to. A more specific scope overrides a more general
/// one field by field: collection, then folder, then the photo's own
/// metadata, then the asset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "lowercase")]
pub enum LicenceScope {
    Collection {
        collection: String,
    },
    /// An import batch: every asset whose source path in `collection` lies
    /// under `folder`.
    Folder {
        collection: String,
        folder: String,
    },
    Asset {
        asset: AssetId,
    },
}

impl LicenceScope {
    pub fn key(&self) -> String {
        match self {
            LicenceScope::Collection { collection } => format!("collection/{collection}"),
            LicenceScope::Folder { collection, folder } => format!("folder/{collection}/{folder}"),
            LicenceScope::Asset { asset } => format!("asset/{}", asset.as_str()),
        }
    }
}

/// The terms of a licence; every field optional so scopes can be layered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LicenceTerms {
    pub licensor: Option<String>,
    pub creator: Option<String>,
    pub copyright: Option<String>,
    pub terms: Option<String>,
    /// Purposes allowed; `None`: the licence does not restrict purposes.
    pub purposes: Option<BTreeSet<String>>,
    pub territory: Option<String>,
    pub credit: Option<String>,
    pub valid_from: Option<Date>,
    pub valid_until: Option<Date>,
    pub document: Option<DocumentRef>,
}

impl LicenceTerms {
    /// `over` layered on top of `self`: each field `over` sets wins.
    pub fn overlay(&mut self, over: &LicenceTerms) {
        macro_rules! take {
            ($($f:ident),*) => {$( if over.$f.is_some() { self.$f = over.$f.clone(); } )*};
        }
        take!(
            licensor,
            creator,
            copyright,
            terms,
            purposes,
            territory,
            credit,
            valid_from,
            valid_until,
            document
        );
    }

    pub fn is_empty(&self) -> bool {
        *self == LicenceTerms::default()
    }
}

/// One version of a licence record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    pub scope: LicenceScope,
    pub version: u32,
    pub terms: LicenceTerms,
    pub recorded_at: Timestamp,
    pub recorded_by: String,
}

/// What a restriction applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Subject {
    Asset(AssetId),
    Person(PersonId),
}

impl Subject {
    pub fn key(&self) -> String {
        match self {
            Subject::Asset(a) => format!("asset/{}", a.as_str()),
            Subject::Person(p) => format!("person/{}", p.as_str()),
        }
    }
}

/// One version of a restriction (GDPR Art. 18/21): while `restricted`, the
/// subject is kept but blocks every usage decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    pub subject: Subject,
    pub version: u32,
    pub restricted: bool,
    pub reason: String,
    pub recorded_at: Timestamp,
    pub recorded_by: String,
}

/// A record that has versions.
pub trait Versioned {
    fn record_key(&self) -> String;
    fn version(&self) -> u32;
    fn recorded_at(&self) -> Timestamp;
}

impl Versioned for Consent {
    fn record_key(&self) -> String {
        self.id.0.clone()
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn recorded_at(&self) -> Timestamp {
        self.recorded_at
    }
}

impl Versioned for Licence {
    fn record_key(&self) -> String {
        self.scope.key()
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn recorded_at(&self) -> Timestamp {
        self.recorded_at
    }
}

impl Versioned for Restriction {
    fn record_key(&self) -> String {
        self.subject.key()
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn recorded_at(&self) -> Timestamp {
        self.recorded_at
    }
}

/// The latest version of each record recorded strictly before `known_at`.
pub fn latest_known<'a, T: Versioned + 'a>(
    versions: impl IntoIterator<Item = &'a T>,
    known_at: Timestamp,
) -> Vec<&'a T> {
    let mut latest: std::collections::BTreeMap<String, &'a T> = std::collections::BTreeMap::new();
    for v in versions {
        if v.recorded_at() >= known_at {
            continue;
        }
        let entry = latest.entry(v.record_key()).or_insert(v);
        if v.version() > entry.version() {
            *entry = v;
        }
    }
    latest.into_values().collect()
}
