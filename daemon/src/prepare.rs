//! `consentryd --prepare`: the secrets a fresh installation needs, created
//! once, before the service first starts. The package's postinst runs it as
//! root with `--owner consentry`; the service itself then never writes /etc.
//!
//! Architecture Invariant: an existing secret is never overwritten, moved or
//! re-owned. A master key lost to an upgrade would be a lost photo store.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::pipeline::store::crypto;

/// What `--prepare` did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Kept,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub what: &'static str,
    pub path: PathBuf,
    pub outcome: Outcome,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.outcome {
            Outcome::Created => "created",
            Outcome::Kept => "kept   ",
        };
        write!(f, "{verb} {} ({})", self.path.display(), self.what)
    }
}

/// Creates every missing secret named by `config`, owned by `owner` (a user
/// name; its primary group too) when given. Existing files are checked
/// (a damaged certificate is an error) but left as they are.
pub fn prepare(config: &Config, owner: Option<&str>) -> anyhow::Result<Vec<Line>> {
    let owner = owner
        .map(|name| match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Ok((user.uid, user.gid)),
            Ok(None) => anyhow::bail!("no user {name:?} on this system (create it first)"),
            Err(err) => anyhow::bail!("cannot look up user {name:?}: {err}"),
        })
        .transpose()?;
    let give = |path: &Path| -> anyhow::Result<()> {
        if let Some((uid, gid)) = owner {
            nix::unistd::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("cannot give {} to the service user", path.display()))?;
        }
        Ok(())
    };
    let mut lines = Vec::new();

    let master = &config.store.master_key_file;
    lines.push(if master.exists() {
        kept("master key", master)
    } else {
        if let Some(dir) = master.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        crypto::generate_key_file(master)
            .with_context(|| format!("cannot create {}", master.display()))?;
        give(master)?;
        created("master key", master)
    });

    let signing = &config.audit.signing_key_file;
    let existed = signing.exists();
    crate::audit::sign::SigningKey::load_or_create(signing)?;
    lines.push(if existed {
        kept("audit signing key", signing)
    } else {
        give(signing)?;
        created("audit signing key", signing)
    });

    if config.web.enabled {
        let web = &config.web;
        // A folder made here for the pair (mode 0700) goes to the owner too.
        let new_dir = web
            .cert_file
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty() && !dir.exists())
            .map(Path::to_owned);
        let tls =
            consentry_web::tls::load_or_generate(&web.cert_file, &web.key_file, &web.hostnames)?;
        if tls.generated {
            if let Some(dir) = &new_dir {
                give(dir)?;
            }
            give(&web.key_file)?;
            give(&web.cert_file)?;
            lines.push(created("console certificate", &web.cert_file));
            lines.push(created("console certificate key", &web.key_file));
        } else {
            lines.push(kept("console certificate", &web.cert_file));
            lines.push(kept("console certificate key", &web.key_file));
        }
    }
    Ok(lines)
}

fn created(what: &'static str, path: &Path) -> Line {
    Line {
        what,
        path: path.to_owned(),
        outcome: Outcome::Created,
    }
}

fn kept(what: &'static str, path: &Path) -> Line {
    Line {
        what,
        path: path.to_owned(),
        outcome: Outcome::Kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(dir: &Path) -> Config {
        let mut config = Config::default();
        config.store.master_key_file = dir.join("master.key");
        config.audit.signing_key_file = dir.join("audit-signing.key");
        config.web.cert_file = dir.join("tls/console.crt");
        config.web.key_file = dir.join("tls/console.key");
        config
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_each_secret_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let first = prepare(&config, None).unwrap();
        assert!(
            first.iter().all(|l| l.outcome == Outcome::Created),
            "{first:?}"
        );
        assert_eq!(first.len(), 4);
        assert_eq!(mode(&config.store.master_key_file), 0o600);
        assert_eq!(mode(&config.audit.signing_key_file), 0o600);
        assert_eq!(mode(&config.web.key_file), 0o600);
        let key = std::fs::read(&config.store.master_key_file).unwrap();
        let cert = std::fs::read(&config.web.cert_file).unwrap();
        crypto::load_master_key(&config.store.master_key_file, "none").unwrap();

        let again = prepare(&config, None).unwrap();
        assert!(
            again.iter().all(|l| l.outcome == Outcome::Kept),
            "{again:?}"
        );
        assert_eq!(std::fs::read(&config.store.master_key_file).unwrap(), key);
        assert_eq!(std::fs::read(&config.web.cert_file).unwrap(), cert);
        assert!(again[0].to_string().starts_with("kept    "));
    }

    #[test]
    fn a_half_present_certificate_pair_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        std::fs::write(&config.web.cert_file, "not a certificate").unwrap();
        let err = prepare(&config, None).unwrap_err().to_string();
        assert!(err.contains("console.key is missing"), "{err}");
        // The master key made before the error is kept for the next run.
        assert!(config.store.master_key_file.exists());
    }

    #[test]
    fn an_unknown_owner_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let err = prepare(&config, Some("no-such-user-consentry"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no user \"no-such-user-consentry\""), "{err}");
        assert!(!config.store.master_key_file.exists());
    }
}
