//! Console users: local accounts with argon2id password hashes and role
//! grants, sealed in the store (`consentry-users`). Managed with
//! `consentry user add|passwd|disable|enable|role|list` (the first admin is
//! created that way); the CLI hashes the password, so it never crosses the
//! control socket and is never logged.
//!
//! Sign-in goes through [`Users::authenticate`]; it is the seam for other
//! identity sources (LDAP, OIDC, SAML, SCIM provisioning): they would yield
//! the same [`User`] with grants mapped from groups.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use consentry_web::session::Sessions;
use consentry_web::throttle::{Locked, LoginThrottle};
use serde::{Deserialize, Serialize};

use super::authz::Grant;
use crate::pipeline::store::Store;
use crate::pipeline::store::records::TREE_USERS;

#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub full_name: Option<String>,
    /// argon2id PHC string.
    pub password: String,
    pub grants: Vec<Grant>,
    #[serde(default)]
    pub disabled: bool,
    pub created_at_ms: u64,
    pub password_changed_at_ms: u64,
    #[serde(default)]
    pub last_login_ms: Option<u64>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("grants", &self.grants)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A user as listed (never the hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub name: String,
    pub full_name: Option<String>,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
    pub password_changed_at: String,
    pub last_login: Option<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            name: u.name.clone(),
            full_name: u.full_name.clone(),
            roles: u.grants.iter().map(Grant::to_string).collect(),
            disabled: u.disabled,
            created_at: crate::clock::rfc3339(u.created_at_ms),
            password_changed_at: crate::clock::rfc3339(u.password_changed_at_ms),
            last_login: u.last_login_ms.map(crate::clock::rfc3339),
        }
    }
}

/// `consentry user …` on the control socket. Passwords arrive hashed.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum UserRequest {
    Add {
        name: String,
        full_name: Option<String>,
        password_hash: String,
        grants: Vec<String>,
    },
    Passwd {
        name: String,
        password_hash: String,
    },
    Disable {
        name: String,
        disabled: bool,
    },
    Grants {
        name: String,
        grants: Vec<String>,
    },
    List,
}

impl std::fmt::Debug for UserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserRequest::Add { name, grants, .. } => {
                write!(f, "Add {{ name: {name:?}, grants: {grants:?}, .. }}")
            }
            UserRequest::Passwd { name, .. } => write!(f, "Passwd {{ name: {name:?}, .. }}"),
            UserRequest::Disable { name, disabled } => {
                write!(f, "Disable {{ name: {name:?}, disabled: {disabled} }}")
            }
            UserRequest::Grants { name, grants } => {
                write!(f, "Grants {{ name: {name:?}, grants: {grants:?} }}")
            }
            UserRequest::List => f.write_str("List"),
        }
    }
}

impl UserRequest {
    pub fn audit_entries(&self) -> Vec<crate::audit::Entry> {
        use crate::audit::Entry;
        let user = |n: &str| format!("user:{n}");
        match self {
            UserRequest::Add { name, grants, .. } => {
                vec![Entry::new("user.add", user(name)).with("roles", grants.join(" "))]
            }
            UserRequest::Passwd { name, .. } => vec![Entry::new("user.passwd", user(name))],
            UserRequest::Disable { name, disabled } => vec![Entry::new(
                if *disabled {
                    "user.disable"
                } else {
                    "user.enable"
                },
                user(name),
            )],
            UserRequest::Grants { name, grants } => {
                vec![Entry::new("user.roles", user(name)).with("roles", grants.join(" "))]
            }
            UserRequest::List => vec![Entry::new("user.list", "users")],
        }
    }
}

/// Why a sign-in failed. The page says only "wrong name or password" or
/// "locked"; the log and the audit trail get the detail.
#[derive(Debug)]
pub enum SignInError {
    Wrong,
    Disabled,
    Locked(Locked),
    Store(String),
}

/// The users service: the store's users and the console's live sessions.
pub struct Users {
    store: Arc<Store>,
    sessions: Arc<Sessions>,
    throttle: LoginThrottle,
}

fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid user name: use 1–64 letters, digits, `.`, `_`, `-` or `@`"
        ))
    }
}

fn parse_grants(grants: &[String]) -> Result<Vec<Grant>, String> {
    if grants.is_empty() {
        return Err("give at least one --role (e.g. `editor:website`, `privacy-officer`)".into());
    }
    grants.iter().map(|g| Grant::parse(g)).collect()
}

fn check_hash(hash: &str) -> Result<(), String> {
    if hash.starts_with("$argon2id$") {
        Ok(())
    } else {
        Err("the password must arrive as an argon2id hash (use the consentry CLI)".into())
    }
}

impl Users {
    pub fn new(store: Arc<Store>, sessions: Arc<Sessions>) -> Users {
        Users {
            store,
            sessions,
            throttle: LoginThrottle::new(Default::default()),
        }
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn get(&self, name: &str) -> Result<Option<User>, String> {
        self.store
            .record(TREE_USERS, name)
            .map_err(|e| e.to_string())
    }

    pub fn all(&self) -> Result<Vec<User>, String> {
        self.store.records(TREE_USERS).map_err(|e| e.to_string())
    }

    fn put(&self, user: &User) -> Result<(), String> {
        self.store
            .put_record(TREE_USERS, &user.name, user)
            .map_err(|e| e.to_string())
    }

    fn existing(&self, name: &str) -> Result<User, String> {
        self.get(name)?
            .ok_or_else(|| format!("no console user `{name}` (see `consentry user list`)"))
    }

    /// Answers one `consentry user …` request.
    pub fn answer(&self, request: &UserRequest, out: &mut dyn Write) -> Result<(), String> {
        let now = crate::clock::now_ms();
        let user = match request {
            UserRequest::Add {
                name,
                full_name,
                password_hash,
                grants,
            } => {
                valid_name(name)?;
                check_hash(password_hash)?;
                let grants = parse_grants(grants)?;
                if self.get(name)?.is_some() {
                    return Err(format!("console user `{name}` already exists"));
                }
                User {
                    name: name.clone(),
                    full_name: full_name.clone(),
                    password: password_hash.clone(),
                    grants,
                    disabled: false,
                    created_at_ms: now,
                    password_changed_at_ms: now,
                    last_login_ms: None,
                }
            }
            UserRequest::Passwd {
                name,
                password_hash,
            } => {
                check_hash(password_hash)?;
                let mut user = self.existing(name)?;
                user.password = password_hash.clone();
                user.password_changed_at_ms = now;
                self.sessions.end_user(name);
                user
            }
            UserRequest::Disable { name, disabled } => {
                let mut user = self.existing(name)?;
                user.disabled = *disabled;
                self.sessions.end_user(name);
                user
            }
            UserRequest::Grants { name, grants } => {
                let mut user = self.existing(name)?;
                user.grants = parse_grants(grants)?;
                self.sessions.end_user(name);
                user
            }
            UserRequest::List => {
                for user in self.all()? {
                    crate::control::line(out, &UserView::from(&user))?;
                }
                return Ok(());
            }
        };
        self.put(&user)?;
        crate::control::line(out, &UserView::from(&user))
    }

    /// Checks a name and password, with throttling: after repeated failures
    /// the name (or the address) is locked for a while, even for the right
    /// password. Unknown names cost the same time as known ones.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<User, SignInError> {
        let now = Instant::now();
        self.throttle
            .check(name, ip, now)
            .map_err(SignInError::Locked)?;
        let user = self.get(name).map_err(SignInError::Store)?;
        let Some(mut user) = user else {
            consentry_web::password::dummy_verify(password);
            self.throttle.failure(name, ip, now);
            return Err(SignInError::Wrong);
        };
        if !consentry_web::password::verify(password, &user.password) {
            self.throttle.failure(name, ip, now);
            return Err(SignInError::Wrong);
        }
        if user.disabled {
            return Err(SignInError::Disabled);
        }
        self.throttle.success(name, ip);
        user.last_login_ms = Some(crate::clock::now_ms());
        self.put(&user).map_err(SignInError::Store)?;
        Ok(user)
    }
}
