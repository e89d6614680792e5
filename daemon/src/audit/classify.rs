//! Which audit events each control request produces: one exhaustive match,
//! so a new request cannot be added without deciding what it records.
//!
//! Reads of photos and personal data (`asset.view`, `asset.list`,
//! `asset.download`, `asset.export`, `person.view`, searches, reports) are
//! recorded as well as changes. Objects are ids as given; details never hold a
//! photo's content.

use super::Entry;
use crate::consent::commands::RightsRequest;
use crate::consent::model::LicenceScope;
use crate::control::Request;
use crate::people::commands::PeopleRequest;

/// The events for `request`, in order. Empty: nothing personal is touched.
pub fn entries(request: &Request) -> Vec<Entry> {
    match request {
        Request::Ping | Request::Status => vec![],
        Request::AssetsList => vec![Entry::new("asset.list", "catalogue")],
        Request::AssetShow { id } => vec![Entry::new("asset.view", format!("asset:{id}"))],
        Request::Export => vec![Entry::new("catalogue.export", "catalogue")],
        Request::People { request } => people(request),
        Request::Rights { request } => rights(request),
        Request::Audit { request } => vec![super::commands::entry(request)],
        Request::Dsr { request } => crate::dsr::commands::entries(request),
        Request::Users { request } => request.audit_entries(),
    }
}

fn face(face: &str) -> String {
    format!("face:{face}")
}

fn person(person: &str) -> String {
    format!("person:{person}")
}

fn people(request: &PeopleRequest) -> Vec<Entry> {
    use PeopleRequest as P;
    match request {
        P::Add {
            name,
            faces,
            photos,
            ..
        } => {
            let mut entries = vec![
                Entry::new("person.add", person(name))
                    .with("faces", faces.len())
                    .with("photos", photos.len()),
            ];
            entries.extend(
                faces
                    .iter()
                    .map(|f| Entry::new("face.confirm", face(f)).with("person", name)),
            );
            entries
        }
        P::List { .. } => vec![Entry::new("person.list", "people")],
        P::Show { person: p } => vec![Entry::new("person.view", person(p))],
        P::Merge { into, from } => {
            vec![Entry::new("person.merge", person(into)).with("from", from)]
        }
        P::Split {
            person: p,
            faces,
            name,
        } => vec![
            Entry::new("person.split", person(p))
                .with("faces", faces.join(" "))
                .with("new_person", name),
        ],
        P::Undo { seq } => vec![Entry::new(
            "people.undo",
            seq.map_or("people".to_owned(), |s| format!("people-op:{s}")),
        )],
        P::History => vec![Entry::new("people.history", "people")],
        P::Recognition {
            person: p,
            recognition,
        } => vec![
            Entry::new("person.recognition", person(p)).with("recognition", recognition.as_str()),
        ],
        P::Set {
            person: p,
            kind,
            born,
        } => {
            let mut e = Entry::new("person.edit", person(p));
            if let Some(kind) = kind {
                e = e.with("kind", format!("{kind:?}").to_lowercase());
            }
            if born.is_some() {
                e = e.with("born", "changed");
            }
            vec![e]
        }
        P::Incidental {
            face: f,
            incidental,
        } => {
            vec![Entry::new("face.incidental", face(f)).with("incidental", incidental)]
        }
        P::Confirm { face: f, person: p } => {
            vec![Entry::new("face.confirm", face(f)).with("person", p)]
        }
        P::Reject { face: f, person: p } => {
            let mut e = Entry::new("face.reject", face(f));
            if let Some(p) = p {
                e = e.with("person", p);
            }
            vec![e]
        }
        P::NotAFace { face: f } => vec![Entry::new("face.not_a_face", face(f))],
        P::Redetect { assets } => assets
            .iter()
            .map(|a| Entry::new("asset.redetect", format!("asset:{a}")))
            .collect(),
        P::ClustersList => vec![Entry::new("cluster.list", "clusters")],
        P::ClustersName {
            cluster, person: p, ..
        } => {
            vec![Entry::new("cluster.name", format!("cluster:{cluster}")).with("person", p)]
        }
        P::ClustersDismiss { cluster } => {
            vec![Entry::new("cluster.dismiss", format!("cluster:{cluster}"))]
        }
        P::Maintain => vec![Entry::new("people.maintain", "people")],
        P::SearchPerson { person: p } => {
            vec![Entry::new("search.person", person(p))]
        }
        P::SearchPhoto { photo, .. } => {
            vec![Entry::new("search.photo", "photos").with("reference_bytes", photo.hex.len() / 2)]
        }
        P::SearchFace { face: f, .. } => vec![Entry::new("search.face", face(f))],
    }
}

fn scope(scope: &LicenceScope) -> String {
    match scope {
        LicenceScope::Asset { asset } => format!("asset:{asset}"),
        LicenceScope::Collection { collection } => format!("collection:{collection}"),
        LicenceScope::Folder { collection, folder } => format!("folder:{collection}/{folder}"),
    }
}

fn rights(request: &RightsRequest) -> Vec<Entry> {
    use RightsRequest as R;
    match request {
        R::ConsentAdd { consent, document } => vec![
            Entry::new("consent.add", person(&consent.person))
                .with("purposes", consent.purposes.join(" "))
                .with("recognition", consent.recognition)
                .with("document", document.is_some()),
        ],
        R::ConsentWithdraw { id, .. } => {
            vec![Entry::new("consent.withdraw", format!("consent:{id}"))]
        }
        R::ConsentList { person: p, .. } => vec![Entry::new(
            "consent.list",
            p.as_deref().map_or("consents".to_owned(), person),
        )],
        R::ConsentShow { id } => vec![Entry::new("consent.view", format!("consent:{id}"))],
        R::ConsentDocument { id } => {
            vec![Entry::new(
                "consent.document.download",
                format!("consent:{id}"),
            )]
        }
        R::LicenceSet {
            scope: s, document, ..
        } => {
            vec![Entry::new("licence.set", scope(s)).with("document", document.is_some())]
        }
        R::LicenceShow { asset } => vec![Entry::new("licence.view", format!("asset:{asset}"))],
        R::Restrict {
            subject,
            person: is_person,
            restricted,
            ..
        } => vec![Entry::new(
            if *restricted {
                "restriction.add"
            } else {
                "restriction.lift"
            },
            if *is_person {
                person(subject)
            } else {
                format!("asset:{subject}")
            },
        )],
        R::Decide {
            asset,
            purpose,
            date,
            ..
        } => {
            let mut e =
                Entry::new("asset.decide", format!("asset:{asset}")).with("purpose", purpose);
            if let Some(d) = date {
                e = e.with("date", d);
            }
            vec![e]
        }
        R::ReportExpiring { .. } => vec![Entry::new("report.expiring", "rights")],
        R::ReportBlocked { purpose, .. } => {
            let mut e = Entry::new("report.blocked", "rights");
            if let Some(p) = purpose {
                e = e.with("purpose", p);
            }
            vec![e]
        }
        R::ReportWithdrawn { .. } => vec![Entry::new("report.withdrawn", "rights")],
        R::RemindersRun => vec![Entry::new("reminders.run", "reminders")],
        R::Export {
            assets,
            purpose,
            redact,
            xmp,
            ..
        } => assets
            .iter()
            .map(|a| {
                Entry::new("asset.export", format!("asset:{a}"))
                    .with("purpose", purpose)
                    .with("redacted", redact)
                    .with("xmp", xmp)
            })
            .collect(),
    }
}
