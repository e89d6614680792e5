//! The Debian package, end to end, in a clean Debian root that this test makes
//! with debootstrap (the host's release, minbase, from the host's own apt
//! mirror): install, `consentryd --version` and `--check-config`,
//! `systemd-analyze verify` and `security`, the daemon started as the unit
//! starts it (user consentry, the master key as a credential, NOTIFY_SOCKET
//! and WATCHDOG_USEC from this test) reporting ready and pinging the watchdog,
//! a hung main loop (its thread stopped with ptrace) that stops the pings, a
//! photo ingested, an upgrade to a rebuilt package with a higher version
//! (config edits, keys and data unchanged), remove (all kept) and purge (all
//! gone). Also lintian on the package.
//!
//! Needs root (chroot, mount, ptrace), debootstrap, lintian and the packages
//! `make test` builds (`target/debian/consentry_<version>-{1,2}_amd64.deb`).
//! Elsewhere it is skipped with the reason; `.ci/run` makes that an error.
//! The clean root is cached as a tarball under `target/package-test/`.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use consentry_tests::{blake3_hex, on_path, synthetic_jpeg};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The watchdog interval this test asks for; the daemon pings at half of it.
const WATCHDOG: Duration = Duration::from_secs(1);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `make deb` writes revision 1; `make debs` repackages it as revision 2.
fn deb(revision: u32) -> PathBuf {
    let dir = if revision == 1 { "" } else { "upgrade/" };
    workspace().join(format!(
        "target/debian/{dir}consentry_{VERSION}-{revision}_amd64.deb"
    ))
}

/// Why this machine cannot run the package tests, if it cannot.
fn missing_prerequisite(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the package tests need root (chroot, mount, ptrace)".into());
    }
    for tool in tools {
        if !on_path(tool) {
            return Some(format!("{tool} is not installed (make deps installs it)"));
        }
    }
    for revision in [1, 2] {
        if !deb(revision).is_file() {
            return Some(format!(
                "{} is not built (make test builds it: make debs)",
                deb(revision).display()
            ));
        }
    }
    None
}

/// Returns early with the reason on stderr, or panics under CI.
macro_rules! require {
    ($($tool:expr),*) => {
        if let Some(why) = missing_prerequisite(&[$($tool),*]) {
            assert!(
                std::env::var("CONSENTRY_REQUIRE_PACKAGE").as_deref() != Ok("1"),
                "the package test cannot run: {why}"
            );
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

fn artefacts() -> PathBuf {
    let dir = workspace().join("target/test-artefacts/package");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn lintian_reports_no_errors() {
    require!("lintian");
    let output = Command::new("lintian")
        .args([
            "--fail-on",
            "error",
            "--info",
            "--display-level",
            ">=pedantic",
        ])
        .arg(deb(1))
        .output()
        .expect("run lintian");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(artefacts().join("lintian.txt"), &report).unwrap();
    eprintln!("lintian:\n{report}");
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    assert!(
        output.status.success(),
        "lintian failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The host's release and the apt mirror it installs from (never a fixed host).
fn host_release_and_mirror() -> (String, String) {
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let release = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .expect("VERSION_CODENAME in /etc/os-release")
        .trim_matches('"')
        .to_owned();
    let mut sources = String::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".sources") || name.ends_with(".list") {
                sources += &std::fs::read_to_string(entry.path()).unwrap_or_default();
                sources.push('\n');
            }
        }
    }
    sources += &std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    // deb822 stanzas ("URIs:" … "Suites:") and one-line "deb URI suite …" entries.
    let mut mirror = None;
    for stanza in sources.split("\n\n") {
        let uri = stanza
            .lines()
            .find_map(|l| l.trim().strip_prefix("URIs:"))
            .map(|u| u.split_whitespace().next().unwrap_or_default().to_owned());
        let suites = stanza
            .lines()
            .find_map(|l| l.trim().strip_prefix("Suites:"))
            .unwrap_or_default();
        if let Some(uri) = uri
            && suites.split_whitespace().any(|s| s == release)
        {
            mirror = Some(uri);
            break;
        }
        for line in stanza.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"deb") {
                let rest: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with('['))
                    .collect();
                if rest.len() >= 2 && rest[1] == release && mirror.is_none() {
                    mirror = Some(rest[0].to_owned());
                }
            }
        }
        if mirror.is_some() {
            break;
        }
    }
    (
        release,
        mirror.expect("no apt source for the host's release in /etc/apt"),
    )
}

/// A clean Debian root: minbase plus systemd (for systemd-sysusers and
/// systemd-analyze), with the host's apt sources, /proc mounted.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn make() -> Root {
        let work = workspace().join("target/package-test");
        let dir = work.join("root");
        let _ = Command::new("umount").arg(dir.join("proc")).output();
        if dir.exists() {
            run(Command::new("rm").arg("-rf").arg(&dir));
        }
        std::fs::create_dir_all(&dir).unwrap();
        let (release, mirror) = host_release_and_mirror();
        let cache = work.join(format!("{release}-base.tar"));
        if cache.is_file() {
            run(Command::new("tar")
                .arg("-xf")
                .arg(&cache)
                .arg("-C")
                .arg(&dir));
        } else {
            let started = Instant::now();
            run(Command::new("debootstrap")
                .args(["--variant=minbase", "--include=systemd,man-db"])
                .arg(&release)
                .arg(&dir)
                .arg(&mirror));
            eprintln!(
                "debootstrap {release}: {:.0} s",
                started.elapsed().as_secs_f64()
            );
            run(Command::new("tar")
                .arg("-cf")
                .arg(&cache)
                .arg("-C")
                .arg(&dir)
                .arg("."));
        }
        // The host's apt sources (its mirror and its security updates).
        let _ = std::fs::remove_file(dir.join("etc/apt/sources.list"));
        run(Command::new("sh").arg("-c").arg(format!(
            "cp /etc/apt/sources.list.d/*.sources {0}/etc/apt/sources.list.d/ 2>/dev/null || cp /etc/apt/sources.list {0}/etc/apt/sources.list",
            dir.display()
        )));
        run(Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(dir.join("proc")));
        let root = Root { dir };
        root.ok(&["apt-get", "update", "-qq"]);
        root
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// `args` in the root as root, with a clean environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.command_as(None, args);
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    /// `args` in the root as `user:group` (root when None), with a clean
    /// environment (PATH and LANG only).
    fn command_as<S: AsRef<std::ffi::OsStr>>(&self, userspec: Option<&str>, args: &[S]) -> Command {
        let mut command = Command::new("chroot");
        if let Some(spec) = userspec {
            command.arg(format!("--userspec={spec}"));
        }
        command
            .arg(&self.dir)
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        command
    }

    /// Runs `args` in the root as root; asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(run(&mut self.command(args)).stdout).unwrap()
    }

    fn installed(&self) -> BTreeMap<String, u64> {
        self.ok(&[
            "dpkg-query",
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Installed-Size}\n",
        ])
        .lines()
        .filter(|l| l.starts_with("ii"))
        .filter_map(|l| {
            let mut parts = l.split('\t').skip(1);
            Some((parts.next()?.to_owned(), parts.next()?.parse().ok()?))
        })
        .collect()
    }

    fn apt_install(&self, deb: &Path) {
        let name = deb.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(deb, self.path("/tmp").join(&name)).unwrap();
        self.ok(&[
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confold",
            &format!("/tmp/{name}"),
        ]);
    }

    fn uid_of(&self, user: &str) -> (u32, u32) {
        let passwd = std::fs::read_to_string(self.path("/etc/passwd")).unwrap();
        let line = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("no user {user} in the root's /etc/passwd"));
        let fields: Vec<&str> = line.split(':').collect();
        (fields[2].parse().unwrap(), fields[3].parse().unwrap())
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.path("/proc"))
            .output();
    }
}

/// The service's start as its unit describes it, read from the installed unit.
struct Unit {
    user: String,
    group: String,
    exec_start_pre: Vec<String>,
    exec_start: Vec<String>,
}

impl Unit {
    fn read(root: &Root) -> Unit {
        let text =
            std::fs::read_to_string(root.path("/lib/systemd/system/consentryd.service")).unwrap();
        let value = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
                .collect()
        };
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        assert_eq!(value("Type"), ["notify"], "Type=notify");
        assert!(!value("WatchdogSec").is_empty(), "WatchdogSec= is set");
        Unit {
            user: value("User").remove(0),
            group: value("Group").remove(0),
            exec_start_pre: words(&value("ExecStartPre")[0]),
            exec_start: words(&value("ExecStart")[0]),
        }
    }
}

/// The daemon, started in the root the way systemd starts the unit.
struct Service {
    child: Child,
    notify: UnixDatagram,
    log: PathBuf,
}

impl Service {
    fn start(root: &Root, unit: &Unit, name: &str) -> Service {
        let (uid, gid) = root.uid_of(&unit.user);
        // RuntimeDirectory=consentry and LoadCredential=master.key:…, as systemd makes them.
        let runtime = root.path("/run/consentry");
        std::fs::create_dir_all(&runtime).unwrap();
        nix::unistd::chown(&runtime, Some(uid.into()), Some(gid.into())).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o750)).unwrap();
        let credentials = root.path("/run/credentials/consentryd.service");
        std::fs::create_dir_all(&credentials).unwrap();
        std::fs::copy(
            root.path("/etc/consentry/master.key"),
            credentials.join("master.key"),
        )
        .unwrap();
        for path in [credentials.join("master.key"), credentials.clone()] {
            nix::unistd::chown(&path, Some(uid.into()), Some(gid.into())).unwrap();
        }
        std::fs::set_permissions(
            credentials.join("master.key"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o500)).unwrap();
        let notify_dir = root.path("/run/test-notify");
        std::fs::create_dir_all(&notify_dir).unwrap();
        let _ = std::fs::remove_file(notify_dir.join("notify.sock"));
        let notify = UnixDatagram::bind(notify_dir.join("notify.sock")).unwrap();
        std::fs::set_permissions(
            notify_dir.join("notify.sock"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();

        let userspec = format!("{}:{}", unit.user, unit.group);
        let as_service = |args: &[String]| {
            let mut command = root.command_as(Some(&userspec), args);
            command
                .envs([
                    ("HOME", "/var/lib/consentry"),
                    ("USER", unit.user.as_str()),
                    ("LOGNAME", unit.user.as_str()),
                    ("SHELL", "/usr/sbin/nologin"),
                    ("INVOCATION_ID", "0123456789abcdef0123456789abcdef"),
                    (
                        "STATE_DIRECTORY",
                        "/var/lib/consentry:/var/lib/consentry-ledger",
                    ),
                    ("RUNTIME_DIRECTORY", "/run/consentry"),
                    ("CONFIGURATION_DIRECTORY", "/etc/consentry"),
                    (
                        "CREDENTIALS_DIRECTORY",
                        "/run/credentials/consentryd.service",
                    ),
                    ("NOTIFY_SOCKET", "/run/test-notify/notify.sock"),
                ])
                .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string());
            command
        };
        run(&mut as_service(&unit.exec_start_pre));
        let log = artefacts().join(format!("consentryd-{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = as_service(&unit.exec_start)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start consentryd in the root");
        let mut service = Service { child, notify, log };
        let ready = service.wait_for("READY=1", Duration::from_secs(120));
        assert!(ready.contains("STATUS=serving"), "{ready}");
        service
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The next datagram, if one comes within the socket's read timeout.
    fn next(&mut self) -> Option<String> {
        let mut buf = [0u8; 4096];
        match self.notify.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => {
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("consentryd exited with {status}:\n{}", self.log());
                }
                None
            }
        }
    }

    fn wait_for(&mut self, what: &str, timeout: Duration) -> String {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(message) = self.next()
                && message.lines().any(|l| l == what)
            {
                return message;
            }
        }
        panic!(
            "no {what} from consentryd within {timeout:?}:\n{}",
            self.log()
        );
    }

    /// How many watchdog pings arrive within `window`.
    fn pings_within(&mut self, window: Duration) -> usize {
        let started = Instant::now();
        let mut pings = 0;
        while started.elapsed() < window {
            if self.next().is_some_and(|m| m == "WATCHDOG=1") {
                pings += 1;
            }
        }
        pings
    }

    fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.wait_for("STOPPING=1", Duration::from_secs(30));
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "consentryd exited with {status}:\n{}",
            self.log()
        );
    }
}

/// Stops only the main thread (PTRACE_SEIZE + PTRACE_INTERRUPT): the
/// workers, the control socket and the console carry on.
struct HungMainLoop(nix::unistd::Pid);

impl HungMainLoop {
    fn start(pid: u32) -> HungMainLoop {
        use nix::sys::{ptrace, wait};
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        ptrace::seize(pid, ptrace::Options::empty()).expect("PTRACE_SEIZE the main thread");
        ptrace::interrupt(pid).expect("PTRACE_INTERRUPT");
        wait::waitpid(pid, Some(wait::WaitPidFlag::__WALL)).expect("wait for the stop");
        HungMainLoop(pid)
    }
}

impl Drop for HungMainLoop {
    fn drop(&mut self) {
        nix::sys::ptrace::detach(self.0, None).expect("PTRACE_DETACH");
    }
}

fn sha(path: &Path) -> String {
    blake3_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The files an upgrade or a removal must leave exactly as they were.
const KEPT: [&str; 5] = [
    "/etc/consentry/consentry.toml",
    "/etc/consentry/master.key",
    "/etc/consentry/audit-signing.key",
    "/etc/consentry/tls/console.crt",
    "/etc/consentry/tls/console.key",
];

fn snapshot(root: &Root) -> BTreeMap<&'static str, String> {
    KEPT.iter().map(|p| (*p, sha(&root.path(p)))).collect()
}

fn assets(root: &Root) -> Vec<serde_json::Value> {
    root.ok(&["consentry", "assets", "list", "--json"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn install_run_upgrade_remove_purge_in_a_clean_root() {
    require!("debootstrap", "chroot", "mount");
    let started = Instant::now();
    let root = Root::make();
    eprintln!(
        "clean root ready after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // Install; the closure it pulls in is reported.
    let before = root.installed();
    root.apt_install(&deb(1));
    let after = root.installed();
    let pulled: Vec<(&String, &u64)> = after
        .iter()
        .filter(|(name, _)| !before.contains_key(*name))
        .collect();
    let mut by_size = pulled.clone();
    by_size.sort_by(|a, b| b.1.cmp(a.1));
    let total: u64 = pulled.iter().map(|(_, kib)| **kib).sum();
    let mut report = format!(
        "consentry {VERSION}-1 Installed-Size {} KiB; it pulls {} packages into a clean root ({} MiB installed in all, consentry included):\n",
        after["consentry"],
        pulled.len(),
        total / 1024
    );
    for (name, kib) in &by_size {
        report += &format!("{kib:>9} KiB  {name}\n");
    }
    std::fs::write(artefacts().join("closure.txt"), &report).unwrap();
    eprintln!("{}", report.lines().take(25).collect::<Vec<_>>().join("\n"));
    assert!(after.contains_key("consentry"));

    // dpkg recorded the files' sums, and they match.
    root.ok(&["dpkg", "--verify", "consentry"]);
    assert!(root.path("/var/lib/dpkg/info/consentry.md5sums").is_file());

    // The binaries and the shipped config.
    let version = root.ok(&["consentryd", "--version"]);
    assert!(version.contains(VERSION), "{version}");
    let checked = root.ok(&[
        "consentryd",
        "--check-config",
        "/etc/consentry/consentry.toml",
    ]);
    assert!(checked.contains(": ok"), "{checked}");
    let conffiles = root.ok(&["dpkg-query", "-W", "-f", "${Conffiles}", "consentry"]);
    assert!(
        conffiles.contains("/etc/consentry/consentry.toml"),
        "{conffiles}"
    );
    for model in [
        "models.json",
        "face_detector.safetensors",
        "face_landmarks.safetensors",
        "face_embedder.safetensors",
    ] {
        assert!(
            root.path("/usr/share/consentry/models")
                .join(model)
                .is_file()
        );
    }

    // The units: systemd-analyze accepts them and scores the sandbox.
    root.ok(&["systemd-analyze", "verify", "consentryd.service"]);
    let security = root.ok(&[
        "systemd-analyze",
        "security",
        "--offline=true",
        "consentryd.service",
    ]);
    let score_line = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .expect("an exposure score")
        .to_owned();
    std::fs::write(artefacts().join("security.txt"), &security).unwrap();
    eprintln!("{score_line}");
    let score: f64 = score_line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("a numeric score");
    assert!(score < 2.0, "{score_line}");
    // The CUDA flavour's drop-in is accepted on top of the unit.
    let dropin = root.path("/etc/systemd/system/consentryd.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::copy(
        workspace().join("systemd/cuda.conf"),
        dropin.join("cuda.conf"),
    )
    .unwrap();
    root.ok(&["systemd-analyze", "verify", "consentryd.service"]);
    std::fs::remove_dir_all(&dropin).unwrap();

    // The user and the secrets the postinst made.
    let (uid, gid) = root.uid_of("consentry");
    assert!(uid < 1000, "consentry is a system user (uid {uid})");
    for secret in [
        "/etc/consentry/master.key",
        "/etc/consentry/audit-signing.key",
        "/etc/consentry/tls/console.key",
    ] {
        let meta = std::fs::metadata(root.path(secret)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{secret}");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{secret} owner");
    }
    for dir in ["/var/lib/consentry", "/var/lib/consentry-ledger"] {
        let meta = std::fs::metadata(root.path(dir)).unwrap();
        assert_eq!(meta.uid(), uid, "{dir} owner");
    }

    // The admin's edits: the console port, a comment, and the drop share.
    let config_path = root.path("/etc/consentry/consentry.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        config.contains("listen = \"[::]:8443\""),
        "shipped listen address"
    );
    let edited = config.replace(
        "listen = \"[::]:8443\"",
        &format!("listen = \"127.0.0.1:{port}\"  # edited by the admin"),
    );
    std::fs::write(&config_path, &edited).unwrap();
    let share = root.path("/srv/photo-drop");
    std::fs::create_dir_all(&share).unwrap();
    nix::unistd::chown(&share, Some(uid.into()), Some(gid.into())).unwrap();
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o770)).unwrap();

    // Started as the unit starts it: ready, pings, a hung main loop, data.
    let unit = Unit::read(&root);
    assert_eq!(unit.user, "consentry");
    let mut service = Service::start(&root, &unit, "first");
    let pings = service.pings_within(WATCHDOG * 3);
    assert!(
        pings >= 3,
        "{pings} watchdog pings in 3 s:\n{}",
        service.log()
    );
    let photo = synthetic_jpeg(8, 1600, 1200);
    std::fs::write(share.join("staff-photo.jpg.part"), &photo).unwrap();
    nix::unistd::chown(
        &share.join("staff-photo.jpg.part"),
        Some(uid.into()),
        Some(gid.into()),
    )
    .unwrap();
    std::fs::rename(
        share.join("staff-photo.jpg.part"),
        share.join("staff-photo.jpg"),
    )
    .unwrap();
    let waited = Instant::now();
    while assets(&root).is_empty() || share.join("staff-photo.jpg").exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the dropped photo was not ingested:\n{}",
            service.log()
        );
        let _ = service.next();
    }
    let catalogue = assets(&root);
    assert_eq!(catalogue.len(), 1, "{catalogue:?}");
    {
        let _hung = HungMainLoop::start(service.child.id());
        while service.next().is_some() {} // pings sent before the stop
        let pings = service.pings_within(WATCHDOG * 3);
        assert_eq!(pings, 0, "pings went on while the main loop was stopped");
        // Only the main loop stopped: the control socket still answers.
        let status = root.ok(&["consentry", "status"]);
        assert!(!status.is_empty());
    }
    let resumed = service.pings_within(WATCHDOG * 2);
    assert!(resumed >= 1, "pings did not resume:\n{}", service.log());
    service.stop();
    let kept = snapshot(&root);

    // With the service stopped the CLI opens the store itself: as the service
    // user it works; as root it refuses (a file root made there would stop
    // the service) and says how to run it.
    let refused = root
        .command(&["consentry", "assets", "list", "--json"])
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && why.contains("sudo -u consentry consentry"),
        "root opened the service's store: {why}"
    );
    let direct = run(root
        .command_as(
            Some("consentry:consentry"),
            &["consentry", "assets", "list", "--json"],
        )
        .env("HOME", "/var/lib/consentry"));
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&direct.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed, catalogue, "the service user's direct view");

    // Upgrade to the rebuilt package with a higher revision.
    let scripts = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb(2))
        .arg(scripts.path()));
    let postinst = std::fs::read_to_string(scripts.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("deb-systemd-invoke try-restart consentryd.service"),
        "the postinst restarts the service after an upgrade:\n{postinst}"
    );
    root.apt_install(&deb(2));
    let installed = root.ok(&["dpkg-query", "-W", "-f", "${Version}", "consentry"]);
    assert_eq!(installed, format!("{VERSION}-2"));
    assert_eq!(snapshot(&root), kept, "an upgrade changed config or keys");
    assert!(
        std::fs::read_to_string(&config_path)
            .unwrap()
            .contains("# edited by the admin")
    );
    let service = Service::start(&root, &unit, "upgraded");
    assert_eq!(
        assets(&root),
        catalogue,
        "the catalogue changed in the upgrade"
    );
    service.stop();

    // Remove keeps config, keys and data; purge removes them.
    root.ok(&["apt-get", "remove", "-y", "-q", "consentry"]);
    assert!(!root.path("/usr/bin/consentryd").exists());
    assert_eq!(snapshot(&root), kept, "remove changed config or keys");
    assert!(
        root.path("/var/lib/consentry")
            .read_dir()
            .unwrap()
            .next()
            .is_some()
    );
    let status = root.ok(&["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "consentry"]);
    assert_eq!(status.trim(), "rc", "removed, config kept");
    root.ok(&["apt-get", "purge", "-y", "-q", "consentry"]);
    for gone in [
        "/etc/consentry",
        "/var/lib/consentry",
        "/var/lib/consentry-ledger",
    ] {
        assert!(!root.path(gone).exists(), "{gone} survived the purge");
    }
    eprintln!(
        "package lifecycle done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
