//! The two command lines: `consentryd` (the daemon) and `consentry` (the
//! operator's tool). `consentry` asks a running daemon over its control
//! socket; when none runs it opens the store itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod consent;
mod dsr;
mod faces;
mod people;
mod users;

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::control::{self, Request};
use crate::domain::SourceRef;
use crate::people::People;
use crate::pipeline::ingest::{Ingestor, SourceFile, find_sidecar, stat};
use crate::pipeline::store::{Store, crypto};
use crate::pipeline::watch::{is_litter, is_sidecar};

/// consentryd: watches drop shares and ingests photos into the encrypted store.
#[derive(Debug, Parser)]
#[command(name = "consentryd", version, about)]
pub struct DaemonArgs {
    /// Configuration file.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH, conflicts_with = "demo")]
    pub config: PathBuf,
    /// Run on the embedded demo configuration, with all state below DIR
    /// (a drop folder, the data and a generated demo master key).
    #[arg(long, value_name = "DIR")]
    pub demo: Option<PathBuf>,
    /// Validate FILE and exit: prints the first problem, naming the key.
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    pub check_config: Option<PathBuf>,
    /// Create the secrets the configuration names, where absent (master key,
    /// audit signing key, console certificate), then exit. Never overwrites.
    #[arg(long, conflicts_with_all = ["demo", "check_config"])]
    pub prepare: bool,
    /// With --prepare: the user (and its group) that owns the new files.
    #[arg(long, value_name = "USER", requires = "prepare")]
    pub owner: Option<String>,
}

/// consentry: inspect and operate the consentry photo store.
#[derive(Debug, Parser)]
#[command(name = "consentry", version, about)]
pub struct CliArgs {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Use the demo configuration below DIR (as `consentryd --demo DIR`).
    #[arg(long, global = true, value_name = "DIR")]
    pub demo: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Queue depth, assets per status, per share, and the daemon's workers.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List or show assets.
    Assets {
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// Ingest files once, without a share (the daemon must not be running).
    /// Source files are never deleted.
    Ingest {
        /// Files to ingest.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Collection the files belong to.
        #[arg(long, default_value = "import")]
        collection: String,
    },
    /// With ASSETs: export copies for a purpose (`--purpose P --out DIR
    /// [--xmp] [--redact]`). Without: write the whole catalogue as JSON lines
    /// (contains personal data: protect the file).
    Export {
        /// Assets to export for --purpose.
        assets: Vec<String>,
        /// Catalogue dump: output file; standard output if omitted.
        #[arg(long, short, conflicts_with = "assets")]
        output: Option<PathBuf>,
        /// The purpose of the copies (see consent.purposes).
        #[arg(long, requires = "assets")]
        purpose: Option<String>,
        /// The day of use (default: today).
        #[arg(long, value_name = "DATE", requires = "assets")]
        date: Option<jiff::civil::Date>,
        /// Write an XMP sidecar beside each copy.
        #[arg(long, requires = "assets")]
        xmp: bool,
        /// Pixelate every face that blocks the purpose in a new JPEG.
        #[arg(long, requires = "assets")]
        redact: bool,
        /// Directory for the copies.
        #[arg(long, value_name = "DIR", requires = "assets")]
        out: Option<PathBuf>,
    },
    /// Consents (model releases): add, withdraw, list, show, document.
    Consent {
        #[command(subcommand)]
        command: consent::ConsentCommand,
    },
    /// Licences of assets, collections and folders.
    Licence {
        #[command(subcommand)]
        command: consent::LicenceCommand,
    },
    /// Restrict an asset or a person (GDPR Art. 18/21): kept, never usable.
    Restrict(consent::RestrictArgs),
    /// May ASSET be used for --purpose on --date? Allowed or blocked, with reasons.
    Decide(consent::DecideArgs),
    /// Reports: expiring, blocked, withdrawn.
    Report {
        #[command(subcommand)]
        command: consent::ReportCommand,
    },
    /// The reminder digest.
    Reminders {
        #[command(subcommand)]
        command: consent::RemindersCommand,
    },
    /// Read an export into a new, empty data directory.
    Import { file: PathBuf },
    /// Create a new master key file (mode 0600); never overwrites.
    Keygen { path: PathBuf },
    /// Run the face engine on files, and record decisions about stored faces.
    Faces {
        #[command(subcommand)]
        command: FacesCommand,
    },
    /// Persons: add (enrol), list, show, merge, split, undo, recognition basis.
    People {
        #[command(subcommand)]
        command: people::PeopleCommand,
    },
    /// Clusters of unknown faces: list, name, dismiss.
    Clusters {
        #[command(subcommand)]
        command: people::ClustersCommand,
    },
    /// Find photos of a person, or faces like those in a photo or like a stored face.
    Search(people::SearchArgs),
    /// Data-subject requests (GDPR Art. 15-21): open, list, find, package, erase, restrict, close.
    Dsr {
        #[command(subcommand)]
        command: dsr::DsrCommand,
    },
    /// The audit trail: verify, export, checkpoints.
    Audit {
        #[command(subcommand)]
        command: dsr::AuditCommand,
    },
    /// The Art. 30 record of processing activities, from the configuration.
    Register(dsr::RegisterArgs),
    /// Web console users: add, passwd, disable, enable, role, list.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Back up the data directory into one zip file (daemon stopped).
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup; photos erased since it was taken are erased again.
    Restore {
        file: PathBuf,
        /// Discard a non-empty data directory.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum FacesCommand {
    /// Detect, align and embed the faces in FILEs; prints one line per file.
    /// Works without a config file (then with the built-in defaults).
    Detect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per file and line: every face's box, landmarks,
        /// score, quality and embedding.
        #[arg(long)]
        json: bool,
        /// Models directory (default: faces.models_dir, or $CONSENTRY_MODELS_DIR).
        #[arg(long, value_name = "DIR")]
        models: Option<PathBuf>,
    },
    #[command(flatten)]
    Decision(people::FaceDecision),
}

#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// One line per asset.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Everything known about one asset.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// Loads the config a command line names.
pub fn load_config(config: &Path, demo: Option<&Path>) -> anyhow::Result<Config> {
    match demo {
        Some(dir) => Ok(Config::demo(&absolute(dir)?)),
        None => Ok(Config::load(config)?),
    }
}

pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    })
}

/// Prepares a demo directory: drop folder and a demo master key.
pub fn prepare_demo(config: &Config) -> anyhow::Result<()> {
    for share in &config.shares {
        std::fs::create_dir_all(&share.path)
            .with_context(|| format!("cannot create {}", share.path.display()))?;
    }
    if !config.store.master_key_file.exists() {
        if let Some(dir) = config.store.master_key_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crypto::generate_key_file(&config.store.master_key_file)
            .with_context(|| format!("cannot create {}", config.store.master_key_file.display()))?;
        eprintln!(
            "created a demo master key at {} (demo only: production keys come from the package)",
            config.store.master_key_file.display()
        );
    }
    if let Some(dir) = config.store.master_key_file.parent() {
        demo_console_user(config, &dir.join("demo-console-user.txt"))?;
    }
    Ok(())
}

/// The demo's console account (admin, privacy officer, editor of `demo`),
/// created once with a random password kept in `file` (mode 0600).
fn demo_console_user(config: &Config, file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if !file.exists() {
        let mut bytes = [0u8; 9];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
        let password = crypto::hex_encode(&bytes);
        let hash = consentry_web::password::hash(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (store, _) = Store::open(&config.store)?;
        let users = crate::console::users::Users::new(
            Arc::new(store),
            crate::console::sessions(&config.web),
        );
        users
            .answer(
                &crate::console::users::UserRequest::Add {
                    name: "demo".into(),
                    full_name: Some("Demo user".into()),
                    password_hash: hash,
                    grants: vec![
                        "admin".into(),
                        "privacy-officer".into(),
                        "editor:demo".into(),
                    ],
                },
                &mut std::io::sink(),
            )
            .map_err(anyhow::Error::msg)?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("cannot create {}", file.display()))?;
        writeln!(out, "user demo\npassword {password}")?;
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password "))
        .unwrap_or("?");
    eprintln!(
        "  console sign-in:   demo / {password}   (kept in {})",
        file.display()
    );
    Ok(())
}

pub fn run_cli(args: CliArgs) -> anyhow::Result<()> {
    if let Command::Keygen { path } = &args.command {
        crypto::generate_key_file(path)
            .with_context(|| format!("cannot create master key file {}", path.display()))?;
        eprintln!(
            "created {} (mode 0600). Back it up apart from the data: without it the photo store cannot be read.",
            path.display()
        );
        return Ok(());
    }
    if let Command::Faces {
        command:
            FacesCommand::Detect {
                files,
                json,
                models,
            },
    } = &args.command
    {
        // Support use: no config file needed, nothing stored, no daemon asked.
        let mut config = if args.demo.is_none() && !args.config.exists() {
            Config::from_defaults()
        } else {
            load_config(&args.config, args.demo.as_deref())?
        };
        if let Some(dir) = models {
            config.faces.models_dir = absolute(dir)?;
        }
        config.faces.batch_wait = std::time::Duration::ZERO;
        let ok = faces::detect(&config, files, *json, &mut std::io::stdout().lock())?;
        anyhow::ensure!(
            ok,
            "some files could not be processed (see their error lines)"
        );
        return Ok(());
    }
    let config = load_config(&args.config, args.demo.as_deref())?;
    let socket = config.control_socket();
    let daemon = control::daemon_listening(&socket);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.command {
        Command::Keygen { .. }
        | Command::Faces {
            command: FacesCommand::Detect { .. },
        } => unreachable!("handled above"),
        Command::Faces {
            command: FacesCommand::Decision(decision),
        } => {
            let (request, json) = decision.request();
            people::run(&config, daemon, request, json, &mut out)?;
        }
        Command::People { command } => {
            let (request, json) = command.request()?;
            people::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Clusters { command } => {
            let (request, json) = command.request();
            people::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Search(args) => {
            let (request, json) = args.request()?;
            people::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Dsr { command } => dsr::run_dsr(&config, daemon, command, &mut out)?,
        Command::Audit { command } => dsr::run_audit(&config, daemon, command, &mut out)?,
        Command::Register(args) => dsr::run_register(&config, daemon, args, &mut out)?,
        Command::User { command } => users::run(&config, daemon, command, &mut out)?,
        Command::Backup { out: file } => dsr::backup(&config, daemon, &file, &mut out)?,
        Command::Restore { file, replace } => {
            dsr::restore(&config, daemon, &file, replace, &mut out)?
        }
        Command::Status { json } => {
            let mut report = None;
            query(&config, daemon, &Request::Status, &mut |line| {
                report = Some(line.to_owned());
                Ok(())
            })?;
            let report = report.context("no status in the reply")?;
            if json {
                writeln!(out, "{report}")?;
            } else {
                print_status(&mut out, &serde_json::from_str(&report)?)?;
            }
        }
        Command::Assets {
            command: AssetsCommand::List { json },
        } => {
            query(&config, daemon, &Request::AssetsList, &mut |line| {
                if json {
                    writeln!(out, "{line}")
                } else {
                    let asset: serde_json::Value =
                        serde_json::from_str(line).map_err(std::io::Error::other)?;
                    writeln!(
                        out,
                        "{}  {:<11}  {:<14}  {:>11}  {}",
                        &asset["id"].as_str().unwrap_or("?")[..16],
                        asset["status"].as_str().unwrap_or("?"),
                        asset["collection"].as_str().unwrap_or("?"),
                        match (asset["width"].as_u64(), asset["height"].as_u64()) {
                            (Some(w), Some(h)) => format!("{w}×{h}"),
                            _ => "-".to_owned(),
                        },
                        asset["reason"]
                            .as_str()
                            .or(asset["sources"][0]["path"].as_str())
                            .unwrap_or("")
                    )
                }
            })?;
        }
        Command::Assets {
            command: AssetsCommand::Show { id, json },
        } => {
            query(&config, daemon, &Request::AssetShow { id }, &mut |line| {
                if json {
                    writeln!(out, "{line}")
                } else {
                    let value: serde_json::Value =
                        serde_json::from_str(line).map_err(std::io::Error::other)?;
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?
                    )
                }
            })?;
        }
        Command::Export {
            assets,
            purpose,
            date,
            xmp,
            redact,
            out: dir,
            ..
        } if !assets.is_empty() => {
            let purpose = purpose.context("give --purpose for the copies")?;
            let dir = dir.context("give --out DIR for the copies")?;
            consent::run_files(
                &config,
                daemon,
                crate::consent::commands::RightsRequest::Export {
                    assets,
                    purpose,
                    date,
                    xmp,
                    redact,
                },
                &dir,
                false,
                &mut out,
            )?;
        }
        Command::Consent {
            command: consent::ConsentCommand::Document { id, out: file },
        } => {
            consent::run_files(
                &config,
                daemon,
                crate::consent::commands::RightsRequest::ConsentDocument { id },
                &file,
                true,
                &mut out,
            )?;
        }
        Command::Consent { command } => {
            let (request, json) = command.request()?;
            consent::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Licence { command } => {
            let (request, json) = command.request()?;
            consent::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Restrict(args) => {
            let (request, json) = args.request();
            consent::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Decide(args) => {
            let (request, json) = args.request();
            consent::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Report { command } => {
            let (request, json) = command.request();
            consent::run(&config, daemon, request, json, &mut out)?;
        }
        Command::Reminders {
            command: consent::RemindersCommand::Run { json },
        } => {
            consent::run(
                &config,
                daemon,
                crate::consent::commands::RightsRequest::RemindersRun,
                json,
                &mut out,
            )?;
        }
        Command::Export { output, .. } => {
            let mut writer: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    create_private(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(out),
            };
            query(&config, daemon, &Request::Export, &mut |line| {
                writeln!(writer, "{line}")
            })?;
            writer.flush()?;
        }
        Command::Import { file } => {
            anyhow::ensure!(
                !daemon,
                "stop consentryd before importing (the catalogue is in use)"
            );
            let (store, _) = Store::open(&config.store)?;
            let mut reader = std::io::BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?,
            );
            let n = store.import(&mut reader)?;
            eprintln!(
                "imported {n} asset(s) into {}",
                config.store.data_dir.display()
            );
        }
        Command::Ingest { paths, collection } => {
            anyhow::ensure!(
                !daemon,
                "consentryd is running; drop the files into a share instead (or stop the daemon for a one-shot ingest)"
            );
            ingest_once(&config, &paths, &collection)?;
        }
    }
    Ok(())
}

/// Runs a request against the daemon, or against the store when none runs
/// (loading the face engine only for requests that need it).
pub(crate) fn query(
    config: &Config,
    daemon: bool,
    request: &Request,
    on_line: &mut dyn FnMut(&str) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    if daemon {
        control::request(&config.control_socket(), request, on_line)?;
        return Ok(());
    }
    let (store, _) = Store::open(&config.store)?;
    let store = Arc::new(store);
    let people = Arc::new(People::open(Arc::clone(&store), config.people.clone())?);
    let rights = crate::consent::Rights::open(Arc::clone(&store), config.consent.clone())?;
    let audit = crate::audit::Audit::open(Arc::clone(&store), &config.audit)?;
    let actor = crate::audit::Actor::this_process("cli");
    crate::dsr::erase::replay(
        &store,
        &people,
        &crate::dsr::ledger::Ledger::new(&config.store.erasure_ledger),
        &config.ingest.thumbnail_sizes,
    )
    .map_err(anyhow::Error::msg)?;
    let needs_engine = request.needs_engine();
    let ingestor = if needs_engine {
        Some(Ingestor::new(
            Arc::clone(&people),
            config.ingest.clone(),
            Arc::new(crate::daemon::start_faces(config)?),
        ))
    } else {
        None
    };
    let mut buffer = LineSink {
        on_line,
        partial: Vec::new(),
    };
    let ctx = control::Context {
        store: &store,
        config,
        registry: None,
        people: &people,
        ingestor: ingestor.as_ref(),
        rights: &rights,
        audit: &audit,
        users: &crate::console::users::Users::new(
            Arc::clone(&store),
            crate::console::sessions(&config.web),
        ),
        actor: &actor,
    };
    control::answer(request, &ctx, &mut buffer).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Adapts `Write` output of whole lines to a per-line callback.
struct LineSink<'a> {
    on_line: &'a mut dyn FnMut(&str) -> std::io::Result<()>,
    partial: Vec<u8>,
}

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            (self.on_line)(
                std::str::from_utf8(&line[..line.len() - 1]).map_err(std::io::Error::other)?,
            )?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

fn ingest_once(config: &Config, paths: &[PathBuf], collection: &str) -> anyhow::Result<()> {
    let (store, _) = Store::open(&config.store)?;
    let people = Arc::new(People::open(Arc::new(store), config.people.clone())?);
    let ingestor = Ingestor::new(
        people,
        config.ingest.clone(),
        Arc::new(crate::daemon::start_faces(config)?),
    );
    let files: Vec<PathBuf> = paths
        .iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if is_sidecar(name) {
                eprintln!(
                    "{}: an XMP sidecar is read with its image; pass the image",
                    p.display()
                );
            }
            !is_sidecar(name) && !is_litter(name)
        })
        .cloned()
        .collect();
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} {elapsed_precise} {wide_msg}",
            )
            .expect("valid template"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (mut ready, mut quarantined, mut failed) = (0, 0, 0);
    for path in &files {
        progress.set_message(path.display().to_string());
        let result = (|| -> anyhow::Result<_> {
            let absolute = absolute(path)?;
            let (size, mtime_ms) =
                stat(&absolute)?.with_context(|| format!("{} does not exist", path.display()))?;
            anyhow::ensure!(
                size <= config.ingest.max_file_size,
                "{} is {} MiB, over the {} MiB limit (ingest.max_file_size)",
                path.display(),
                size >> 20,
                config.ingest.max_file_size >> 20
            );
            let bytes = std::fs::read(&absolute)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let sidecar = find_sidecar(&absolute).map(std::fs::read).transpose()?;
            let source = SourceRef {
                collection: collection.to_owned(),
                path: absolute.display().to_string(),
                size,
                mtime_ms,
                ingested_at_ms: crate::clock::now_ms(),
            };
            Ok(ingestor.ingest(
                SourceFile {
                    source,
                    path: absolute,
                    bytes,
                    sidecar,
                },
                None,
            )?)
        })();
        match result {
            Ok(report) => {
                let line = match &report.reason {
                    Some(reason) => {
                        quarantined += 1;
                        format!(
                            "{}  quarantined  {}: {reason}",
                            report.asset_id,
                            path.display()
                        )
                    }
                    None => {
                        ready += 1;
                        format!(
                            "{}  {}  {}",
                            report.asset_id,
                            report.status.as_str(),
                            path.display()
                        )
                    }
                };
                progress.suspend(|| println!("{line}"));
            }
            Err(err) => {
                failed += 1;
                progress.suspend(|| eprintln!("{}: {err:#}", path.display()));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    eprintln!("{ready} ingested, {quarantined} quarantined, {failed} failed");
    anyhow::ensure!(failed == 0, "{failed} file(s) could not be ingested");
    Ok(())
}

fn print_status(out: &mut dyn Write, report: &serde_json::Value) -> std::io::Result<()> {
    writeln!(
        out,
        "daemon: {}",
        if report["daemon_running"].as_bool() == Some(true) {
            "running"
        } else {
            "not running"
        }
    )?;
    let q = &report["queue"];
    writeln!(
        out,
        "queue: {} job(s): {} waiting, {} running, {} retrying, {} finishing",
        q["total"], q["waiting"], q["running"], q["retrying"], q["committed"]
    )?;
    let assets = &report["assets"];
    writeln!(
        out,
        "assets: {} ready, {} pending, {} quarantined, {} erased",
        assets["ready"], assets["pending"], assets["quarantined"], assets["erased"]
    )?;
    let people = &report["people"];
    if people.is_object() {
        let on: Vec<&str> = people["recognition"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        writeln!(
            out,
            "people: {} person(s), {} face template(s), {} cluster(s) of unknown faces; recognition {}",
            people["persons"],
            people["templates"],
            people["clusters"],
            if on.is_empty() {
                "off (people.recognition)".to_owned()
            } else {
                format!("on for {}", on.join(", "))
            }
        )?;
    }
    for share in report["shares"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "share {} → {} ({}): {}",
            share["path"].as_str().unwrap_or("?"),
            share["collection"].as_str().unwrap_or("?"),
            share["after_ingest"].as_str().unwrap_or("?"),
            if share["available"].as_bool() == Some(true) {
                "available"
            } else {
                "NOT AVAILABLE"
            }
        )?;
    }
    for worker in report["workers"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "worker {:<10} {:<9} done {:>6} failed {:>4}  {}",
            worker["name"].as_str().unwrap_or("?"),
            worker["state"].as_str().unwrap_or("?"),
            worker["done"],
            worker["failed"],
            worker["detail"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}
