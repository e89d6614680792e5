//! `consentry consent|licence|restrict|decide|report|reminders` and the
//! purpose export: the command lines of `consent::commands::RightsRequest`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use jiff::Timestamp;
use jiff::civil::Date;

use super::query;
use crate::config::Config;
use crate::consent::NewConsent;
use crate::consent::commands::{ExportedFile, RightsRequest};
use crate::consent::model::{LicenceScope, LicenceTerms, Signer};
use crate::control::Request;
use crate::domain::AssetId;
use crate::people::commands::PhotoUpload;
use crate::pipeline::store::crypto::hex_decode;

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Record a signed consent (model release) for PERSON (id or exact name).
    Add {
        person: String,
        /// A purpose it covers (repeat; see consent.purposes).
        #[arg(long = "purpose", value_name = "PURPOSE")]
        purposes: Vec<String>,
        /// It also covers face recognition (the GDPR Art. 9 basis).
        #[arg(long)]
        recognition: bool,
        /// The day it was signed (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        signed_on: Date,
        /// First valid day (default: the signing day).
        #[arg(long, value_name = "DATE")]
        from: Option<Date>,
        /// Last valid day (default: until withdrawn).
        #[arg(long, value_name = "DATE")]
        until: Option<Date>,
        /// Signed by this parent or guardian (for a minor), not the person.
        #[arg(long, value_name = "NAME")]
        guardian: Option<String>,
        /// The signed document: a PDF or a scan (stored encrypted).
        #[arg(long, value_name = "FILE")]
        document: Option<PathBuf>,
        /// Your own reference for the paper (form number, case number).
        #[arg(long)]
        reference: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a consent: effective at once (or --at), in every decision.
    Withdraw {
        id: String,
        #[arg(long)]
        reason: String,
        /// When the withdrawal was received (RFC 3339), if not now.
        #[arg(long, value_name = "TIME")]
        at: Option<Timestamp>,
        #[arg(long)]
        json: bool,
    },
    /// Consents (latest versions) and their status on a date.
    List {
        #[arg(long)]
        person: Option<String>,
        #[arg(long, value_name = "DATE")]
        date: Option<Date>,
        #[arg(long)]
        json: bool,
    },
    /// Every version of a consent.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a consent's signed document to FILE.
    Document {
        id: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// Record licence terms for an asset, a collection or a folder (import
    /// batch); fields not given keep their previous value.
    Set(Box<LicenceSetArgs>),
    /// The licence in effect for an asset and where each layer came from.
    Show {
        asset: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct LicenceSetArgs {
    /// The asset (omit with --collection).
    asset: Option<String>,
    /// A default for every asset of this collection.
    #[arg(long, conflicts_with = "asset")]
    collection: Option<String>,
    /// With --collection: only assets whose source path lies under FOLDER.
    #[arg(long, requires = "collection")]
    folder: Option<String>,
    #[arg(long)]
    licensor: Option<String>,
    #[arg(long)]
    creator: Option<String>,
    #[arg(long)]
    copyright: Option<String>,
    #[arg(long)]
    terms: Option<String>,
    /// An allowed purpose (repeat); none given: purposes unchanged.
    #[arg(long = "purpose", value_name = "PURPOSE")]
    purposes: Vec<String>,
    #[arg(long)]
    territory: Option<String>,
    #[arg(long)]
    credit: Option<String>,
    #[arg(long, value_name = "DATE")]
    from: Option<Date>,
    #[arg(long, value_name = "DATE")]
    until: Option<Date>,
    #[arg(long, value_name = "FILE")]
    document: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RestrictArgs {
    /// The asset id, or with --person the person.
    subject: String,
    #[arg(long)]
    person: bool,
    #[arg(long)]
    reason: String,
    /// Lift the restriction instead.
    #[arg(long)]
    lift: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    asset: String,
    #[arg(long)]
    purpose: String,
    /// The day of use (default: today, in consent.time_zone).
    #[arg(long, value_name = "DATE")]
    date: Option<Date>,
    /// Count only records made before this instant (default: the end of
    /// DATE when it is past: what was known then).
    #[arg(long, value_name = "TIME")]
    as_of: Option<Timestamp>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Consents and licences ending within N days; minors coming of age.
    Expiring {
        #[arg(long)]
        days: Option<i32>,
        #[arg(long)]
        json: bool,
    },
    /// Assets blocked for a purpose (every purpose when omitted) on a date.
    Blocked {
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long, value_name = "DATE")]
        date: Option<Date>,
        #[arg(long)]
        json: bool,
    },
    /// Consents withdrawn since a date, with the photos they affect.
    Withdrawn {
        #[arg(long, value_name = "DATE")]
        since: Option<Date>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemindersCommand {
    /// Send the reminder digest's new items now.
    Run {
        #[arg(long)]
        json: bool,
    },
}

fn document(path: Option<&Path>) -> anyhow::Result<Option<PhotoUpload>> {
    path.map(|p| PhotoUpload::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()
}

impl ConsentCommand {
    pub fn request(self) -> anyhow::Result<(RightsRequest, bool)> {
        Ok(match self {
            ConsentCommand::Add {
                person,
                purposes,
                recognition,
                signed_on,
                from,
                until,
                guardian,
                document: doc,
                reference,
                notes,
                json,
            } => (
                RightsRequest::ConsentAdd {
                    consent: Box::new(NewConsent {
                        person,
                        signer: guardian.map_or(Signer::Subject, |name| Signer::Guardian { name }),
                        signed_on,
                        purposes,
                        recognition,
                        valid_from: from,
                        valid_until: until,
                        reference,
                        notes,
                    }),
                    document: document(doc.as_deref())?,
                },
                json,
            ),
            ConsentCommand::Withdraw {
                id,
                reason,
                at,
                json,
            } => (RightsRequest::ConsentWithdraw { id, reason, at }, json),
            ConsentCommand::List { person, date, json } => {
                (RightsRequest::ConsentList { person, date }, json)
            }
            ConsentCommand::Show { id, json } => (RightsRequest::ConsentShow { id }, json),
            ConsentCommand::Document { .. } => unreachable!("handled by run_document"),
        })
    }
}

impl LicenceCommand {
    pub fn request(self) -> anyhow::Result<(RightsRequest, bool)> {
        Ok(match self {
            LicenceCommand::Show { asset, json } => (RightsRequest::LicenceShow { asset }, json),
            LicenceCommand::Set(a) => {
                let a = *a;
                let scope = match (a.asset, a.collection, a.folder) {
                    (Some(asset), None, None) => LicenceScope::Asset {
                        asset: AssetId::parse(&asset)
                            .with_context(|| format!("`{asset}` is not an asset id"))?,
                    },
                    (None, Some(collection), None) => LicenceScope::Collection { collection },
                    (None, Some(collection), Some(folder)) => LicenceScope::Folder {
                        collection,
                        folder: folder.trim_matches('/').to_owned(),
                    },
                    _ => anyhow::bail!("give an ASSET, or --collection C [--folder PATH]"),
                };
                let terms = LicenceTerms {
                    licensor: a.licensor,
                    creator: a.creator,
                    copyright: a.copyright,
                    terms: a.terms,
                    purposes: (!a.purposes.is_empty()).then(|| a.purposes.into_iter().collect()),
                    territory: a.territory,
                    credit: a.credit,
                    valid_from: a.from,
                    valid_until: a.until,
                    document: None,
                };
                (
                    RightsRequest::LicenceSet {
                        scope,
                        terms: Box::new(terms),
                        document: document(a.document.as_deref())?,
                    },
                    a.json,
                )
            }
        })
    }
}

impl RestrictArgs {
    pub fn request(self) -> (RightsRequest, bool) {
        (
            RightsRequest::Restrict {
                subject: self.subject,
                person: self.person,
                restricted: !self.lift,
                reason: self.reason,
            },
            self.json,
        )
    }
}

impl DecideArgs {
    pub fn request(self) -> (RightsRequest, bool) {
        (
            RightsRequest::Decide {
                asset: self.asset,
                purpose: self.purpose,
                date: self.date,
                as_of: self.as_of,
            },
            self.json,
        )
    }
}

impl ReportCommand {
    pub fn request(self) -> (RightsRequest, bool) {
        match self {
            ReportCommand::Expiring { days, json } => {
                (RightsRequest::ReportExpiring { days }, json)
            }
            ReportCommand::Blocked {
                purpose,
                date,
                json,
            } => (RightsRequest::ReportBlocked { purpose, date }, json),
            ReportCommand::Withdrawn { since, json } => {
                (RightsRequest::ReportWithdrawn { since }, json)
            }
        }
    }
}

/// Sends the request and prints the answer: JSON lines, or readable text.
pub fn run(
    config: &Config,
    daemon: bool,
    request: RightsRequest,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    query(
        config,
        daemon,
        &Request::Rights {
            request: Box::new(request),
        },
        &mut |line| {
            if json {
                return writeln!(out, "{line}");
            }
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(std::io::Error::other)?;
            writeln!(out, "{}", human(&value))
        },
    )
}

/// Writes files that travel back as hex (exports, documents) into `dir` or to `file`.
pub fn run_files(
    config: &Config,
    daemon: bool,
    request: RightsRequest,
    target: &Path,
    single_file: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    write_files(
        config,
        daemon,
        &Request::Rights {
            request: Box::new(request),
        },
        target,
        single_file,
        out,
    )
}

/// Writes files that travel back as hex into `dir` or to `file` (mode 0600).
pub fn write_files(
    config: &Config,
    daemon: bool,
    request: &Request,
    target: &Path,
    single_file: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if !single_file {
        std::fs::create_dir_all(target)
            .with_context(|| format!("cannot create {}", target.display()))?;
    }
    let mut written = Vec::new();
    query(config, daemon, request, &mut |line| {
        let file: ExportedFile = serde_json::from_str(line).map_err(std::io::Error::other)?;
        let bytes =
            hex_decode(&file.hex).ok_or_else(|| std::io::Error::other("bad hex in the reply"))?;
        let name = Path::new(&file.name)
            .file_name()
            .ok_or_else(|| std::io::Error::other("a file name without a name"))?;
        let path = if single_file {
            target.to_path_buf()
        } else {
            target.join(name)
        };
        super::create_private(&path)?.write_all(&bytes)?;
        written.push(path);
        Ok(())
    })?;
    for path in written {
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

/// One answer line for people to read.
fn human(v: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    if let Some(allowed) = v["allowed"].as_bool() {
        let mut text = format!(
            "{} for {} on {}: {}",
            s(&v["asset"]),
            s(&v["purpose"]),
            s(&v["date"]),
            if allowed { "ALLOWED" } else { "BLOCKED" }
        );
        for r in v["reasons"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "\n  {} {:<28} {}",
                if r["blocking"].as_bool() == Some(true) {
                    "✗"
                } else {
                    "·"
                },
                s(&r["code"]),
                s(&r["message"])
            ));
        }
        return text;
    }
    let consent = if v["consent"].is_object() {
        &v["consent"]
    } else {
        v
    };
    if consent["signed_on"].is_string() {
        let mut text = format!(
            "{} v{}  {:<24} {:<13} {} .. {}  {}",
            s(&consent["id"]),
            consent["version"],
            s(&consent["person_name"]),
            s(&consent["status"]),
            s(&consent["valid_from"]),
            consent["valid_until"].as_str().unwrap_or("(open)"),
            consent["purposes"]
                .as_array()
                .map(|p| p.iter().map(s).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        );
        if let Some(a) = v["affected_assets"].as_array() {
            text.push_str(&format!("\n  {} photo(s) affected", a.len()));
        }
        return text;
    }
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}: {}", s(v)))
                .collect::<Vec<_>>()
                .join("  ")
        })
        .unwrap_or_else(|| v.to_string())
}
