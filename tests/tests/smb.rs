//! SMB drop share: a real `smbd` on 127.0.0.1 (free port) serves the share;
//! `smbclient` uploads 50 photos, one of them large and written slowly in
//! chunks over several seconds. Every photo is ingested exactly once, none
//! half-written, and the share is empty afterwards (default `delete`).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consentry_tests::{Env, blake3_hex, have_tool, synthetic_jpeg};

const PASSWORD: &str = "Passw0rd!consentry";

struct Smbd {
    child: Child,
    state: PathBuf,
    port: u16,
}

impl Smbd {
    fn start(state: &Path, share: &Path, user: &str) -> Smbd {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for sub in ["private", "lock", "state", "cache", "run", "ncalrpc", "log"] {
            std::fs::create_dir_all(state.join(sub)).unwrap();
        }
        let s = state.display();
        let conf = state.join("smb.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\n server role = standalone server\n workgroup = WORKGROUP\n netbios name = CONSENTRYTEST\n\
                 smb ports = {port}\n interfaces = 127.0.0.1\n bind interfaces only = yes\n disable netbios = yes\n\
                 server min protocol = SMB2_10\n passdb backend = tdbsam:{s}/private/passdb.tdb\n private dir = {s}/private\n\
                 lock directory = {s}/lock\n state directory = {s}/state\n cache directory = {s}/cache\n pid directory = {s}/run\n\
                 ncalrpc dir = {s}/ncalrpc\n log file = {s}/log/log.%m\n log level = 1\n load printers = no\n printing = bsd\n\
                 printcap name = /dev/null\n disable spoolss = yes\n map to guest = never\n usershare path =\n\
                 [drop]\n path = {}\n read only = no\n valid users = {user}\n create mask = 0640\n",
                share.display()
            ),
        )
        .unwrap();
        let mut passwd = Command::new("smbpasswd")
            .arg("-c")
            .arg(&conf)
            .args(["-s", "-a", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(passwd.stdin.take().unwrap(), "{PASSWORD}\n{PASSWORD}").unwrap();
        assert!(passwd.wait().unwrap().success(), "smbpasswd failed");
        // setsid: smbd signals its whole process group when it stops.
        let log = std::fs::File::create(state.join("smbd.out")).unwrap();
        let child = Command::new("setsid")
            .args([
                "smbd",
                "--foreground",
                "--no-process-group",
                "--debug-stdout",
                "-s",
            ])
            .arg(&conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "smbd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Smbd {
            child,
            state: state.to_owned(),
            port,
        }
    }

    fn client(&self, user: &str, commands: &str) -> Command {
        let mut cmd = Command::new("smbclient");
        cmd.arg("//127.0.0.1/drop").args([
            "-p",
            &self.port.to_string(),
            "-U",
            &format!("{user}%{PASSWORD}"),
            "-c",
            commands,
        ]);
        cmd
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        if let Ok(pid) = std::fs::read_to_string(self.state.join("run/samba-dcerpcd.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

#[test]
fn smb_uploads_are_ingested_exactly_once_and_removed() {
    if !have_tool("smbd") || !have_tool("smbclient") {
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            std::env::var("CONSENTRY_REQUIRE_TESTDATA").as_deref() != Ok("1"),
            "the SMB test must run as root under CI"
        );
        eprintln!(
            "SKIPPED: the SMB test needs root (smbd's password database and share ownership)"
        );
        return;
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .unwrap()
        .unwrap()
        .name;
    let env = Env::new("delete", "");
    let smbd = Smbd::start(&env.root().join("samba"), &env.share, &user);
    let mut daemon = env.start();

    // 49 ordinary photos in one session.
    let local = env.root().join("upload");
    std::fs::create_dir_all(&local).unwrap();
    let mut expected = std::collections::HashMap::new();
    let mut puts = String::from("mkdir event; ");
    for idx in 0..49 {
        let bytes = synthetic_jpeg(1000 + idx, 320 + (idx as i32 % 5) * 16, 240);
        let name = format!("photo_{idx:02}.jpg");
        std::fs::write(local.join(&name), &bytes).unwrap();
        expected.insert(format!("event/{name}"), blake3_hex(&bytes));
        puts.push_str(&format!(
            "put {} event/{name}; ",
            local.join(&name).display()
        ));
    }

    // One large photo, fed to smbclient through a pipe in chunks with pauses
    // longer than the quiet period: only "closed after writing" keeps it from
    // being taken half-written.
    // smbclient sends in writes of up to 1 MiB, so the photo must span several.
    let large = synthetic_jpeg(4242, 4000, 3000);
    assert!(
        large.len() > 3 << 20,
        "the large photo is {} bytes",
        large.len()
    );
    expected.insert("large.jpg".to_owned(), blake3_hex(&large));
    let fifo = env.root().join("large.fifo");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    let mut slow = smbd
        .client(&user, &format!("put {} large.jpg", fifo.display()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let writer = {
        let (fifo, large) = (fifo.clone(), large.clone());
        std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            for part in large.chunks(512 << 10) {
                pipe.write_all(part).unwrap();
                pipe.flush().unwrap();
                std::thread::sleep(Duration::from_millis(600));
            }
        })
    };

    let output = smbd.client(&user, &puts).output().unwrap();
    assert!(
        output.status.success(),
        "smbclient failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    writer.join().unwrap();
    assert!(slow.wait().unwrap().success(), "the slow upload failed");

    env.wait_drained(&mut daemon, Duration::from_secs(120));
    let assets = env.assets();
    assert_eq!(assets.len(), 50, "every photo once: {assets:#?}");
    for asset in &assets {
        assert_eq!(asset["status"], "ready", "{asset:#}");
        let sources = asset["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 1, "ingested exactly once: {asset:#}");
        let path = sources[0]["path"].as_str().unwrap();
        assert_eq!(
            expected.get(path).map(String::as_str),
            asset["id"].as_str(),
            "{path} was stored whole"
        );
    }
    assert!(
        consentry_tests::files_under(&env.share).is_empty(),
        "uploaded files are gone from the share"
    );
    let log = daemon.stop();
    assert!(
        !log.contains("quarantined"),
        "nothing was quarantined:\n{log}"
    );
}
