//! `consentry user add|passwd|disable|enable|role|list`: console accounts.
//! The password is read here (from the terminal without echo, or one line of
//! standard input with `--password-stdin`), checked against the policy and
//! hashed with argon2id; only the hash goes to the daemon.

use std::io::{BufRead, Write};

use anyhow::Context;
use clap::Subcommand;

use super::query;
use crate::config::Config;
use crate::console::users::UserRequest;
use crate::control::Request;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a console user, e.g. `user add ada --role editor:website`.
    Add {
        name: String,
        /// A role grant: `admin`, `privacy-officer`, `auditor`,
        /// `editor:COLLECTION[,…]` or `viewer:COLLECTION[,…]` (`*`: all).
        #[arg(long = "role", required = true, value_name = "GRANT")]
        roles: Vec<String>,
        #[arg(long)]
        full_name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (ends the user's sessions).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Stop a user signing in (ends their sessions).
    Disable { name: String },
    /// Let a disabled user sign in again.
    Enable { name: String },
    /// Replace a user's role grants (ends their sessions).
    Role {
        name: String,
        #[arg(long = "role", required = true, value_name = "GRANT")]
        roles: Vec<String>,
    },
    /// The console users.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn read_password(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = prompt(&format!("New password for {name}: "))?;
        let again = prompt("Again: ")?;
        anyhow::ensure!(
            first == again,
            "the two passwords differ; nothing was changed"
        );
        first
    };
    consentry_web::password::check_policy(name, &password).map_err(|e| anyhow::anyhow!("{e}"))?;
    consentry_web::password::hash(&password).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Reads a line from the terminal with echo off.
fn prompt(text: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin)
        .context("standard input is not a terminal: pass the password with --password-stdin")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    eprint!("{text}");
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn off echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub fn run(
    config: &Config,
    daemon: bool,
    command: UserCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (request, json) = match command {
        UserCommand::Add {
            name,
            roles,
            full_name,
            password_stdin,
        } => {
            let password_hash = read_password(&name, password_stdin)?;
            (
                UserRequest::Add {
                    name,
                    full_name,
                    password_hash,
                    grants: roles,
                },
                false,
            )
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password_hash = read_password(&name, password_stdin)?;
            (
                UserRequest::Passwd {
                    name,
                    password_hash,
                },
                false,
            )
        }
        UserCommand::Disable { name } => (
            UserRequest::Disable {
                name,
                disabled: true,
            },
            false,
        ),
        UserCommand::Enable { name } => (
            UserRequest::Disable {
                name,
                disabled: false,
            },
            false,
        ),
        UserCommand::Role { name, roles } => (
            UserRequest::Grants {
                name,
                grants: roles,
            },
            false,
        ),
        UserCommand::List { json } => (UserRequest::List, json),
    };
    let mut lines = Vec::new();
    query(config, daemon, &Request::Users { request }, &mut |line| {
        lines.push(line.to_owned());
        Ok(())
    })?;
    for line in lines {
        if json {
            writeln!(out, "{line}")?;
            continue;
        }
        let user: serde_json::Value = serde_json::from_str(&line)?;
        let roles: Vec<&str> = user["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        writeln!(
            out,
            "{}{}  {}{}",
            user["name"].as_str().unwrap_or(""),
            user["full_name"]
                .as_str()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            roles.join(" "),
            if user["disabled"].as_bool() == Some(true) {
                "  [disabled]"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}
