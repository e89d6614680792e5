//! The erasure ledger: the ids of photos erased or redacted under Art. 17,
//! one line each, in a file outside `store.data_dir` (`store.erasure_ledger`).
//!
//! A backup of `data_dir` taken before an erasure still holds the photo; the
//! ledger is not in that backup, and it is replayed on every restore and every
//! start, so the photo is erased again before anything can read it. Lines:
//! `v1 erase ASSET TIME CASE`, `v1 redact ASSET FACE,FACE TIME CASE`, or
//! `v1 forget-person PERSON TIME CASE` (every template of the person). Only
//! ids: the ledger says that something was erased, never what it showed.
//! An entry is appended (and fsynced) before the erasure starts.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::domain::{AssetId, PersonId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerEntry {
    Erase {
        asset: AssetId,
        at_ms: u64,
        case: String,
    },
    Redact {
        asset: AssetId,
        faces: Vec<u32>,
        at_ms: u64,
        case: String,
    },
    /// The person's biometric data (templates) was erased.
    ForgetPerson {
        person: PersonId,
        at_ms: u64,
        case: String,
    },
}

impl LedgerEntry {
    pub fn asset(&self) -> Option<&AssetId> {
        match self {
            LedgerEntry::Erase { asset, .. } | LedgerEntry::Redact { asset, .. } => Some(asset),
            LedgerEntry::ForgetPerson { .. } => None,
        }
    }

    fn line(&self) -> String {
        match self {
            LedgerEntry::Erase { asset, at_ms, case } => format!("v1 erase {asset} {at_ms} {case}"),
            LedgerEntry::Redact {
                asset,
                faces,
                at_ms,
                case,
            } => {
                let faces: Vec<String> = faces.iter().map(u32::to_string).collect();
                format!("v1 redact {asset} {} {at_ms} {case}", faces.join(","))
            }
            LedgerEntry::ForgetPerson {
                person,
                at_ms,
                case,
            } => {
                format!("v1 forget-person {person} {at_ms} {case}")
            }
        }
    }

    fn parse(line: &str) -> Option<LedgerEntry> {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["v1", "erase", asset, at, case] => Some(LedgerEntry::Erase {
                asset: AssetId::parse(asset)?,
                at_ms: at.parse().ok()?,
                case: (*case).to_owned(),
            }),
            ["v1", "redact", asset, faces, at, case] => Some(LedgerEntry::Redact {
                asset: AssetId::parse(asset)?,
                faces: faces
                    .split(',')
                    .map(|f| f.parse().ok())
                    .collect::<Option<Vec<u32>>>()?,
                at_ms: at.parse().ok()?,
                case: (*case).to_owned(),
            }),
            ["v1", "forget-person", person, at, case] => Some(LedgerEntry::ForgetPerson {
                person: PersonId::parse(person)?,
                at_ms: at.parse().ok()?,
                case: (*case).to_owned(),
            }),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("erasure ledger {path}: {source} (store.erasure_ledger)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("erasure ledger {path}, line {line}: not a ledger entry; fix or restore the file")]
    Malformed { path: PathBuf, line: usize },
}

pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    pub fn new(path: &Path) -> Ledger {
        Ledger {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends an entry and makes it durable.
    pub fn append(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let existed = self.path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        writeln!(file, "{}", entry.line()).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        if !existed && let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Every entry, oldest first; no file: none.
    pub fn entries(&self) -> Result<Vec<LedgerEntry>, LedgerError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.io(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                LedgerEntry::parse(l).ok_or(LedgerError::Malformed {
                    path: self.path.clone(),
                    line: i + 1,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(&dir.path().join("ledger/erasures"));
        assert!(ledger.entries().unwrap().is_empty());
        let a = AssetId::parse(&"ab".repeat(32)).unwrap();
        let e1 = LedgerEntry::Erase {
            asset: a.clone(),
            at_ms: 5,
            case: "DSR-2027-0001".into(),
        };
        let e2 = LedgerEntry::Redact {
            asset: a,
            faces: vec![0, 3],
            at_ms: 6,
            case: "DSR-2027-0002".into(),
        };
        let e3 = LedgerEntry::ForgetPerson {
            person: PersonId::parse("0123456789abcdef").unwrap(),
            at_ms: 7,
            case: "DSR-2027-0002".into(),
        };
        ledger.append(&e1).unwrap();
        ledger.append(&e2).unwrap();
        ledger.append(&e3).unwrap();
        assert_eq!(ledger.entries().unwrap(), vec![e1, e2, e3]);
        std::fs::write(ledger.path(), "v1 erase nothex 1 x\n").unwrap();
        let err = ledger.entries().unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
