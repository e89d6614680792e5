//! `consentry dsr …`, `consentry audit …`, `consentry register`,
//! `consentry backup` and `consentry restore`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use jiff::civil::Date;

use super::query;
use crate::audit::commands::{AuditRequest, ExportFormat};
use crate::config::Config;
use crate::control::Request;
use crate::dsr::case::Kind;
use crate::dsr::commands::DsrRequest;
use crate::dsr::erase::Mode;
use crate::people::commands::PhotoUpload;

#[derive(Debug, Subcommand)]
pub enum DsrCommand {
    /// Open a case for PERSON (name or id); due one month after --received.
    Open {
        person: String,
        #[arg(long, value_enum)]
        kind: Kind,
        /// The day the request arrived (default: today).
        #[arg(long, value_name = "DATE")]
        received: Option<Date>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Open cases; --due: those due within --within days (7) and overdue ones.
    List {
        #[arg(long)]
        due: bool,
        #[arg(long, value_name = "DAYS", requires = "due")]
        within: Option<i32>,
        /// Closed cases too.
        #[arg(long, conflicts_with = "due")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// A case with its deadline, extensions, found faces and every action.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Extend the deadline by 1 or 2 months (2 at most in total), with the reason.
    Extend {
        id: String,
        #[arg(long)]
        months: i8,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Find the person's faces: confirmed, suggested, and (with --photo, a
    /// reference photo the person gave) similar stored faces to review.
    Find {
        id: String,
        #[arg(long, value_name = "FILE")]
        photo: Option<PathBuf>,
        #[arg(long, value_name = "D")]
        max_distance: Option<f32>,
        /// Also run the face engine over photos in collections without
        /// recognition (slow; nothing computed is stored).
        #[arg(long, requires = "photo")]
        scan: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write the access / portability package (Art. 15/20) as one zip.
    Package {
        id: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Erase the person's photos (Art. 17): all confirmed ones, or --asset.
    /// auto: redact the person where others in the photo keep a use.
    Erase {
        id: String,
        #[arg(long = "asset", value_name = "ASSET")]
        assets: Vec<String>,
        #[arg(long, value_enum, default_value = "auto")]
        mode: Mode,
        #[arg(long)]
        json: bool,
    },
    /// Restrict the person (Art. 18/21): blocked in every decision and export.
    Restrict {
        id: String,
        #[arg(long)]
        lift: bool,
        /// Also opt the person out of recognition (templates purged).
        #[arg(long)]
        opt_out_recognition: bool,
        #[arg(long)]
        json: bool,
    },
    /// Close the case with its result.
    Close {
        id: String,
        #[arg(long)]
        result: String,
        #[arg(long)]
        json: bool,
    },
    /// Who received the person's photos (Art. 19), from the audit log.
    Recipients {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

impl DsrCommand {
    pub fn request(self) -> anyhow::Result<(DsrRequest, bool)> {
        Ok(match self {
            DsrCommand::Open {
                person,
                kind,
                received,
                notes,
                json,
            } => (
                DsrRequest::Open {
                    person,
                    kind,
                    received,
                    notes,
                },
                json,
            ),
            DsrCommand::List {
                due,
                within,
                all,
                json,
            } => (
                DsrRequest::List {
                    within_days: if due { Some(within.unwrap_or(7)) } else { None },
                    all,
                },
                json,
            ),
            DsrCommand::Show { id, json } => (DsrRequest::Show { id }, json),
            DsrCommand::Extend {
                id,
                months,
                reason,
                json,
            } => (DsrRequest::Extend { id, months, reason }, json),
            DsrCommand::Find {
                id,
                photo,
                max_distance,
                scan,
                json,
            } => {
                let reference = photo
                    .map(|p| {
                        PhotoUpload::read(&p)
                            .with_context(|| format!("cannot read {}", p.display()))
                    })
                    .transpose()?;
                (
                    DsrRequest::Find {
                        id,
                        reference,
                        max_distance,
                        scan,
                    },
                    json,
                )
            }
            DsrCommand::Package { .. } => unreachable!("written to a file"),
            DsrCommand::Erase {
                id,
                assets,
                mode,
                json,
            } => (DsrRequest::Erase { id, assets, mode }, json),
            DsrCommand::Restrict {
                id,
                lift,
                opt_out_recognition,
                json,
            } => (
                DsrRequest::Restrict {
                    id,
                    lift,
                    opt_out_recognition,
                },
                json,
            ),
            DsrCommand::Close { id, result, json } => (DsrRequest::Close { id, result }, json),
            DsrCommand::Recipients { id, json } => (DsrRequest::Recipients { id }, json),
        })
    }
}

pub fn run_dsr(
    config: &Config,
    daemon: bool,
    command: DsrCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if let DsrCommand::Package { id, out: file } = command {
        return super::consent::write_files(
            config,
            daemon,
            &Request::Dsr {
                request: Box::new(DsrRequest::Package { id }),
            },
            &file,
            true,
            out,
        );
    }
    let (request, json) = command.request()?;
    query(
        config,
        daemon,
        &Request::Dsr {
            request: Box::new(request),
        },
        &mut |line| {
            if json {
                return writeln!(out, "{line}");
            }
            let v: serde_json::Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
            writeln!(out, "{}", human_case(&v))
        },
    )
}

fn human_case(v: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    if v["received"].is_string() {
        let mut text = format!(
            "{}  {:<13} {:<24} received {}  due {}{}  {}",
            s(&v["id"]),
            s(&v["kind"]),
            v["person_name"]
                .as_str()
                .unwrap_or(v["person"].as_str().unwrap_or("?")),
            s(&v["received"]),
            s(&v["due"]),
            if v["overdue"].as_bool() == Some(true) {
                "  OVERDUE".to_owned()
            } else if v["status"] == "open" {
                format!(" ({} days left)", v["days_left"])
            } else {
                String::new()
            },
            s(&v["status"]),
        );
        for e in v["extensions"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "\n  extended {} month(s): {}",
                e["months"],
                s(&e["reason"])
            ));
        }
        for a in v["actions"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "\n  {}  {:<10} {}",
                crate::clock::rfc3339(a["at_ms"].as_u64().unwrap_or(0)),
                s(&a["by"]),
                s(&a["action"])
            ));
        }
        if let Some(result) = v["result"].as_str() {
            text.push_str(&format!("\n  result: {result}"));
        }
        return text;
    }
    if v["how"].is_string() && v["face"].is_string() {
        return format!(
            "{:<10} {}{}",
            s(&v["how"]),
            s(&v["face"]),
            v["distance"]
                .as_f64()
                .map(|d| format!("  distance {d:.3}"))
                .unwrap_or_default()
        );
    }
    if let Some(n) = v.get("notify") {
        return format!(
            "notify (Art. 19): {} {} of {} by {}",
            s(&n["at"]),
            s(&n["action"]),
            s(&n["asset"]),
            s(&n["actor"])
        );
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

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain and the signed checkpoints; names the first
    /// bad sequence number. Exit status 1 when broken.
    Verify {
        /// Checkpoints kept elsewhere (JSON lines from `audit checkpoints`).
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Events since a day or instant, as JSON lines or CSV.
    Export {
        /// A day (2027-01-31, local midnight in consent.time_zone) or an RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Sign a checkpoint of the chain now.
    Checkpoint,
    /// The signed checkpoints, as JSON lines (give them to your DPO to keep).
    Checkpoints,
}

fn since_ms(config: &Config, since: Option<&str>) -> anyhow::Result<u64> {
    let Some(text) = since else { return Ok(0) };
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond().max(0) as u64);
    }
    let date: Date = text.parse().with_context(|| {
        format!("--since {text}: expected a day (2027-01-31) or an RFC 3339 instant")
    })?;
    let tz = config.consent.time_zone().map_err(anyhow::Error::msg)?;
    let ts = date.to_zoned(tz)?.timestamp();
    Ok(ts.as_millisecond().max(0) as u64)
}

pub fn run_audit(
    config: &Config,
    daemon: bool,
    command: AuditCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { checkpoints, json } => {
            let external = match checkpoints {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(serde_json::from_str)
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("{}: not checkpoint lines", path.display()))?,
                None => vec![],
            };
            let mut report: Option<crate::audit::VerifyReport> = None;
            let mut raw = String::new();
            query(
                config,
                daemon,
                &Request::Audit {
                    request: AuditRequest::Verify {
                        checkpoints: external,
                    },
                },
                &mut |line| {
                    raw = line.to_owned();
                    report = Some(serde_json::from_str(line).map_err(std::io::Error::other)?);
                    Ok(())
                },
            )?;
            let report = report.context("no report in the reply")?;
            if json {
                writeln!(out, "{raw}")?;
            } else if report.ok {
                writeln!(
                    out,
                    "audit log intact: {} events, last {} (hash {}), {} checkpoints, signed up to event {}",
                    report.events,
                    report.last_seq,
                    &report.last_hash[..16],
                    report.checkpoints,
                    report.checkpointed_seq
                )?;
            } else {
                writeln!(
                    out,
                    "audit log BROKEN at event {}: {}",
                    report.first_bad_seq.unwrap_or(0),
                    report.problem.as_deref().unwrap_or("?")
                )?;
            }
            anyhow::ensure!(
                report.ok,
                "the audit log does not verify (first bad event {})",
                report.first_bad_seq.unwrap_or(0)
            );
            Ok(())
        }
        AuditCommand::Export {
            since,
            format,
            output,
        } => {
            let since_ms = since_ms(config, since.as_deref())?;
            let mut writer: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    super::create_private(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(&mut *out),
            };
            query(
                config,
                daemon,
                &Request::Audit {
                    request: AuditRequest::Export { since_ms, format },
                },
                &mut |line| match format {
                    ExportFormat::Jsonl => writeln!(writer, "{line}"),
                    ExportFormat::Csv => {
                        let v: serde_json::Value =
                            serde_json::from_str(line).map_err(std::io::Error::other)?;
                        writeln!(writer, "{}", v["csv"].as_str().unwrap_or_default())
                    }
                },
            )?;
            writer.flush()?;
            Ok(())
        }
        AuditCommand::Checkpoint => query(
            config,
            daemon,
            &Request::Audit {
                request: AuditRequest::Checkpoint,
            },
            &mut |line| writeln!(out, "{line}"),
        ),
        AuditCommand::Checkpoints => query(
            config,
            daemon,
            &Request::Audit {
                request: AuditRequest::Checkpoints,
            },
            &mut |line| writeln!(out, "{line}"),
        ),
    }
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: RegisterFormat,
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RegisterFormat {
    Markdown,
    Json,
}

/// The Art. 30 register from the configuration (and the catalogue's counts
/// when it can be read).
pub fn run_register(
    config: &Config,
    daemon: bool,
    args: RegisterArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut facts = crate::register::RegisterFacts::default();
    let mut status = None;
    if query(config, daemon, &Request::Status, &mut |line| {
        status = Some(line.to_owned());
        Ok(())
    })
    .is_ok()
        && let Some(line) = status
    {
        let v: serde_json::Value = serde_json::from_str(&line)?;
        facts.assets = v["assets"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|n| n.as_u64()).sum());
        facts.persons = v["people"]["persons"].as_u64().unwrap_or(0);
        facts.templates = v["people"]["templates"].as_u64().unwrap_or(0);
    }
    let register = crate::register::build(config, &facts);
    let generated_at = jiff::Timestamp::now().to_string();
    let text = match args.format {
        RegisterFormat::Json => {
            let mut value = serde_json::to_value(&register)?;
            value["generated_at"] = serde_json::Value::String(generated_at);
            serde_json::to_string_pretty(&value)? + "\n"
        }
        RegisterFormat::Markdown => {
            let md = register.to_markdown();
            match md.split_once('\n') {
                Some((title, rest)) => format!(
                    "{title}\n\n_Generated {generated_at} from the running configuration._\n{rest}"
                ),
                None => md,
            }
        }
    };
    match args.output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

/// Files of a data directory that a backup holds (everything but the
/// socket and temporary files).
fn backup_files(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && !path.extension().is_some_and(|e| e == "tmp" || e == "sock")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `consentry backup --out FILE`: the data directory (catalogue, encrypted
/// blobs, key files) as one zip, with the daemon stopped. The master key, the
/// audit signing key and the erasure ledger are not in it.
pub fn backup(
    config: &Config,
    daemon: bool,
    file: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !daemon,
        "stop consentryd before a backup (systemctl stop consentryd): sled's files are consistent only while closed"
    );
    {
        // Opens (checks the key), records the backup in the audit chain, closes.
        let (store, _) = crate::pipeline::store::Store::open(&config.store)?;
        let store = std::sync::Arc::new(store);
        let audit = crate::audit::Audit::open(std::sync::Arc::clone(&store), &config.audit)?;
        audit.record(
            &crate::audit::Actor::this_process("cli"),
            crate::audit::Outcome::Ok,
            crate::audit::Entry::new("store.backup", "catalogue").with("file", file.display()),
        )?;
        audit.checkpoint()?;
        store.flush()?;
    }
    let data_dir = &config.store.data_dir;
    let files = backup_files(data_dir)?;
    let tmp = file.with_extension("partial");
    let writer =
        super::create_private(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut zip = zip::ZipWriter::new(writer);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true)
        .unix_permissions(0o600);
    let mut bytes = 0u64;
    for path in &files {
        let rel = path.strip_prefix(data_dir)?.to_string_lossy().into_owned();
        zip.start_file(rel, options)?;
        let mut f =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        bytes += std::io::copy(&mut f, &mut zip)?;
    }
    let file_handle = zip.finish()?;
    file_handle.sync_all()?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot create {}", file.display()))?;
    writeln!(
        out,
        "backup written to {}: {} files, {} bytes (keep the master key apart from it)",
        file.display(),
        files.len(),
        bytes
    )?;
    Ok(())
}

/// `consentry restore FILE`: replaces the data directory with a backup, then
/// replays the erasure ledger so nothing erased since comes back.
pub fn restore(
    config: &Config,
    daemon: bool,
    file: &Path,
    replace: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !daemon,
        "stop consentryd before a restore (systemctl stop consentryd)"
    );
    let data_dir = &config.store.data_dir;
    let occupied = data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some();
    anyhow::ensure!(
        !occupied || replace,
        "{} is not empty; add --replace to discard it and restore the backup in its place",
        data_dir.display()
    );
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut archive = zip::ZipArchive::new(reader)
        .with_context(|| format!("{} is not a consentry backup", file.display()))?;
    let staging = data_dir.with_extension("restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let rel = entry
            .enclosed_name()
            .with_context(|| format!("{}: an entry escapes the data directory", file.display()))?;
        let path = staging.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = super::create_private(&path)?;
        std::io::copy(&mut entry, &mut f)?;
        f.sync_all()?;
    }
    anyhow::ensure!(
        staging.join("keycheck").exists(),
        "{} holds no keycheck file: not a consentry backup",
        file.display()
    );
    // The backup must open with this master key before anything is replaced.
    let (master, source) = crate::pipeline::store::crypto::load_master_key(
        &config.store.master_key_file,
        &config.store.master_key_credential,
    )?;
    let fingerprint = crate::pipeline::store::crypto::Keyring::new(master).fingerprint();
    let expected = std::fs::read_to_string(staging.join("keycheck"))?;
    if expected.trim() != fingerprint {
        std::fs::remove_dir_all(&staging)?;
        anyhow::bail!(
            "{} was written with another master key (fingerprint {}), not the one from {source} ({fingerprint}); nothing was changed",
            file.display(),
            expected.trim()
        );
    }
    // The audit events the restore rolls back are kept beside the ledger.
    let kept = if occupied {
        match keep_audit_log(config) {
            Ok(kept) => Some(kept),
            Err(err) => {
                writeln!(
                    out,
                    "warning: the current audit log could not be kept before the restore: {err:#}"
                )?;
                None
            }
        }
    } else {
        None
    };
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("cannot remove {}", data_dir.display()))?;
    }
    std::fs::rename(&staging, data_dir)?;
    let (store, _) = crate::pipeline::store::Store::open(&config.store)?;
    let store = std::sync::Arc::new(store);
    let people = crate::people::People::open(std::sync::Arc::clone(&store), config.people.clone())?;
    let audit = crate::audit::Audit::open(std::sync::Arc::clone(&store), &config.audit)?;
    let actor = crate::audit::Actor::this_process("cli");
    audit.record(
        &actor,
        crate::audit::Outcome::Ok,
        match &kept {
            Some((path, head)) => crate::audit::Entry::new("store.restore", "catalogue")
                .with("file", file.display())
                .with("previous_log", path.display())
                .with("previous_head", head),
            None => {
                crate::audit::Entry::new("store.restore", "catalogue").with("file", file.display())
            }
        },
    )?;
    let redone = crate::dsr::erase::replay(
        &store,
        &people,
        &crate::dsr::ledger::Ledger::new(&config.store.erasure_ledger),
        &config.ingest.thumbnail_sizes,
    )
    .map_err(anyhow::Error::msg)?;
    for r in &redone {
        audit.record(&actor, crate::audit::Outcome::Ok, r.replayed_entry())?;
    }
    store.flush()?;
    let persons = redone.iter().filter(|r| r.person.is_some()).count();
    writeln!(
        out,
        "restored {} into {}; {} photo(s) erased or redacted since the backup were erased again, \
         and the templates of {persons} person(s) (erasure ledger {})",
        file.display(),
        data_dir.display(),
        redone.len() - persons,
        config.store.erasure_ledger.display()
    )?;
    if let Some((path, head)) = kept {
        writeln!(
            out,
            "the audit log before the restore (up to {head}) is kept in {}",
            path.display()
        )?;
    }
    Ok(())
}

/// Writes the current audit log, as JSON lines, beside the erasure ledger
/// (outside the data directory) before a restore replaces it. Returns the
/// file and the head it ended at (`seq:hash`).
fn keep_audit_log(config: &Config) -> anyhow::Result<(PathBuf, String)> {
    let (store, _) = crate::pipeline::store::Store::open(&config.store)?;
    let store = std::sync::Arc::new(store);
    let audit = crate::audit::Audit::open(std::sync::Arc::clone(&store), &config.audit)?;
    let events = audit.events_since(0)?;
    let head = events
        .last()
        .map_or_else(|| "empty".to_owned(), |e| format!("{}:{}", e.seq, e.hash));
    let dir = config
        .store
        .erasure_ledger
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "audit-before-restore-{}.jsonl",
        crate::clock::now_ms()
    ));
    let mut f = super::create_private(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    for event in &events {
        writeln!(f, "{}", serde_json::to_string(event)?)?;
    }
    f.sync_all()?;
    Ok((path, head))
}
