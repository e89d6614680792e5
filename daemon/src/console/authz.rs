//! Who may do what: roles, their grants per collection, and [`check`], the one
//! authorisation decision every console and API route goes through (the
//! router calls it before any handler runs; handlers never decide access).
//!
//! Roles (a user may hold several grants):
//! - `admin`: users and configuration, the daemon's health; no photo access.
//! - `privacy-officer`: consents, DSRs, the audit log, all collections, and
//!   the only role that sees restricted photos and persons (each such access
//!   is audited with `override=restriction`).
//! - `editor`: photos, faces, consents and licences in its collections.
//! - `viewer`: sees and downloads photos of its collections whose use is
//!   allowed today for at least one purpose; no faces, names or consents.
//! - `auditor`: the audit log only.
//!
//! Architecture Invariant: a denial outside the user's collections answers
//! "not found", so a user cannot learn that a photo or person exists.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    PrivacyOfficer,
    Editor,
    Viewer,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::PrivacyOfficer,
        Role::Editor,
        Role::Viewer,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::PrivacyOfficer => "privacy-officer",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Roles that hold for every collection by their nature.
    pub fn is_global(self) -> bool {
        !matches!(self, Role::Editor | Role::Viewer)
    }
}

/// One role, in some collections (`None`: all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    #[serde(default)]
    pub collections: Option<Vec<String>>,
}

impl Grant {
    /// `editor:website,intranet`, `viewer:*`, `privacy-officer`.
    pub fn parse(text: &str) -> Result<Grant, String> {
        let (role, collections) = match text.split_once(':') {
            Some((role, list)) => (role, Some(list)),
            None => (text, None),
        };
        let role = Role::parse(role.trim()).ok_or_else(|| {
            format!(
                "`{role}` is not a role; roles are {}",
                Role::ALL.map(Role::as_str).join(", ")
            )
        })?;
        let collections = match collections.map(str::trim) {
            None | Some("*") => None,
            Some(_) if role.is_global() => {
                return Err(format!(
                    "{} covers every collection; give it without a collection list",
                    role.as_str()
                ));
            }
            Some(list) => {
                let names: Vec<String> = list
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
                if names.is_empty() {
                    return Err(format!("`{text}`: name at least one collection, or `*`"));
                }
                Some(names)
            }
        };
        if collections.is_none() && !role.is_global() && !text.contains(':') {
            return Err(format!(
                "{} needs its collections: `{}:COLLECTION[,COLLECTION…]` or `{}:*`",
                role.as_str(),
                role.as_str(),
                role.as_str()
            ));
        }
        Ok(Grant { role, collections })
    }

    pub fn covers(&self, collection: &str) -> bool {
        self.collections
            .as_ref()
            .is_none_or(|list| list.iter().any(|c| c == collection))
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.collections {
            None if self.role.is_global() => f.write_str(self.role.as_str()),
            None => write!(f, "{}:*", self.role.as_str()),
            Some(list) => write!(f, "{}:{}", self.role.as_str(), list.join(",")),
        }
    }
}

/// What a route does. Each route names exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Signed in, whatever the role (the dashboard, one's own account).
    SignedIn,
    /// Queue, workers, quarantine list, metrics.
    SystemStatus,
    /// A photo, its thumbnail and its usage decisions.
    PhotoView,
    /// The original, or the redacted copy.
    PhotoDownload,
    /// Face boxes with names, face crops, search by person.
    FaceView,
    /// Name, confirm, reject faces; review queue; licences.
    FaceEdit,
    /// A person's page and consents.
    PersonView,
    /// Record or withdraw a consent, upload its document.
    ConsentEdit,
    /// Restrict a person or photo, opt a person out.
    Restrict,
    /// DSR cases.
    Dsr,
    /// The audit log.
    Audit,
    /// Console users.
    Users,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Permission::SignedIn,
        Permission::SystemStatus,
        Permission::PhotoView,
        Permission::PhotoDownload,
        Permission::FaceView,
        Permission::FaceEdit,
        Permission::PersonView,
        Permission::ConsentEdit,
        Permission::Restrict,
        Permission::Dsr,
        Permission::Audit,
        Permission::Users,
    ];

    /// The roles that may hold it (in a covered collection, for scoped ones).
    fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::SignedIn => &[Admin, PrivacyOfficer, Editor, Viewer, Auditor],
            Permission::SystemStatus => &[Admin, PrivacyOfficer],
            Permission::PhotoView | Permission::PhotoDownload => &[PrivacyOfficer, Editor, Viewer],
            Permission::FaceView
            | Permission::FaceEdit
            | Permission::PersonView
            | Permission::ConsentEdit => &[PrivacyOfficer, Editor],
            Permission::Restrict | Permission::Dsr => &[PrivacyOfficer],
            Permission::Audit => &[PrivacyOfficer, Auditor],
            Permission::Users => &[Admin],
        }
    }
}

/// What the permission is asked about.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Nothing in a collection (users, audit, DSR lists).
    Global,
    /// A photo: its collection, whether it (or a person in it) is restricted,
    /// and whether some purpose allows its use today (read only for viewers).
    Photo {
        collection: &'a str,
        restricted: bool,
        usable: bool,
    },
    /// A person: the collections their confirmed photos are in.
    Person {
        collections: &'a [String],
        restricted: bool,
    },
}

/// Why a request was refused; `Hidden` is answered as "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The role does not allow this at all (403).
    Forbidden,
    /// The object is outside the user's collections or restricted (404).
    Hidden,
}

/// The one authorisation decision. `Ok(true)` when allowed only because the
/// privacy officer overrides a restriction (the caller audits that).
pub fn check(grants: &[Grant], permission: Permission, scope: Scope<'_>) -> Result<bool, Denied> {
    let holding: Vec<&Grant> = grants
        .iter()
        .filter(|g| permission.roles().contains(&g.role))
        .collect();
    if holding.is_empty() {
        return Err(Denied::Forbidden);
    }
    let officer = holding.iter().any(|g| g.role == Role::PrivacyOfficer);
    match scope {
        Scope::Global => Ok(false),
        Scope::Photo {
            collection,
            restricted,
            usable,
        } => {
            if officer {
                return Ok(restricted);
            }
            if restricted {
                return Err(Denied::Hidden);
            }
            let allowed = holding.iter().any(|g| {
                g.covers(collection)
                    && match g.role {
                        Role::Viewer => usable,
                        _ => true,
                    }
            });
            if allowed {
                Ok(false)
            } else {
                Err(Denied::Hidden)
            }
        }
        Scope::Person {
            collections,
            restricted,
        } => {
            if officer {
                return Ok(restricted);
            }
            if restricted {
                return Err(Denied::Hidden);
            }
            let allowed = holding
                .iter()
                .any(|g| collections.iter().any(|c| g.covers(c)));
            if allowed {
                Ok(false)
            } else {
                Err(Denied::Hidden)
            }
        }
    }
}

/// Whether any grant lets the user see photos of `collection` at all (for
/// filtering lists before each photo's own check).
pub fn sees_collection(grants: &[Grant], permission: Permission, collection: &str) -> bool {
    grants
        .iter()
        .any(|g| permission.roles().contains(&g.role) && g.covers(collection))
}

/// Whether the user holds `permission` for some scope (navigation links).
pub fn holds(grants: &[Grant], permission: Permission) -> bool {
    grants.iter().any(|g| permission.roles().contains(&g.role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(text: &str) -> Grant {
        Grant::parse(text).unwrap()
    }

    fn photo(collection: &str, restricted: bool, usable: bool) -> Scope<'_> {
        Scope::Photo {
            collection,
            restricted,
            usable,
        }
    }

    #[test]
    fn grants_parse_and_print() {
        assert_eq!(
            g("editor:website, intranet").to_string(),
            "editor:website,intranet"
        );
        assert_eq!(g("viewer:*").to_string(), "viewer:*");
        assert_eq!(g("privacy-officer").to_string(), "privacy-officer");
        assert!(
            Grant::parse("editor")
                .unwrap_err()
                .contains("needs its collections")
        );
        assert!(
            Grant::parse("admin:website")
                .unwrap_err()
                .contains("every collection")
        );
        assert!(Grant::parse("owner").unwrap_err().contains("not a role"));
        assert!(Grant::parse("editor:").is_err());
    }

    #[test]
    fn editors_see_their_collections_only() {
        let editor = [g("editor:website")];
        assert_eq!(
            check(
                &editor,
                Permission::PhotoView,
                photo("website", false, false)
            ),
            Ok(false)
        );
        assert_eq!(
            check(&editor, Permission::FaceEdit, photo("archive", false, true)),
            Err(Denied::Hidden)
        );
        assert_eq!(
            check(&editor, Permission::PhotoView, photo("website", true, true)),
            Err(Denied::Hidden)
        );
        assert_eq!(
            check(&editor, Permission::Dsr, Scope::Global),
            Err(Denied::Forbidden)
        );
    }

    #[test]
    fn viewers_see_usable_photos_only_and_no_faces() {
        let viewer = [g("viewer:website")];
        assert_eq!(
            check(
                &viewer,
                Permission::PhotoDownload,
                photo("website", false, true)
            ),
            Ok(false)
        );
        assert_eq!(
            check(
                &viewer,
                Permission::PhotoView,
                photo("website", false, false)
            ),
            Err(Denied::Hidden)
        );
        assert_eq!(
            check(&viewer, Permission::FaceView, photo("website", false, true)),
            Err(Denied::Forbidden)
        );
    }

    #[test]
    fn the_privacy_officer_overrides_restrictions_and_it_is_flagged() {
        let officer = [g("privacy-officer")];
        assert_eq!(
            check(&officer, Permission::PhotoView, photo("any", true, false)),
            Ok(true)
        );
        assert_eq!(
            check(&officer, Permission::PhotoView, photo("any", false, false)),
            Ok(false)
        );
        let person = Scope::Person {
            collections: &[],
            restricted: true,
        };
        assert_eq!(check(&officer, Permission::PersonView, person), Ok(true));
    }

    #[test]
    fn admins_and_auditors_see_no_photos() {
        for who in [g("admin"), g("auditor")] {
            assert_eq!(
                check(
                    std::slice::from_ref(&who),
                    Permission::PhotoView,
                    photo("website", false, true)
                ),
                Err(Denied::Forbidden)
            );
            assert_eq!(
                check(&[who], Permission::SignedIn, Scope::Global),
                Ok(false)
            );
        }
        assert_eq!(
            check(&[g("auditor")], Permission::Audit, Scope::Global),
            Ok(false)
        );
        assert_eq!(
            check(&[g("admin")], Permission::Audit, Scope::Global),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            check(&[g("admin")], Permission::Users, Scope::Global),
            Ok(false)
        );
    }

    #[test]
    fn several_grants_combine() {
        let both = [g("viewer:archive"), g("editor:website")];
        assert_eq!(
            check(&both, Permission::FaceEdit, photo("website", false, false)),
            Ok(false)
        );
        assert_eq!(
            check(&both, Permission::FaceEdit, photo("archive", false, true)),
            Err(Denied::Hidden)
        );
        assert_eq!(
            check(&both, Permission::PhotoView, photo("archive", false, true)),
            Ok(false)
        );
        let person = Scope::Person {
            collections: &["website".to_owned()],
            restricted: false,
        };
        assert_eq!(check(&both, Permission::PersonView, person), Ok(false));
    }
}
