//! `consentry people …`, `consentry faces confirm|reject|not-a-face|redetect`,
//! `consentry clusters …` and `consentry search`: the people commands,
//! parsed here and answered by `people::commands` (daemon or direct mode).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::query;
use crate::config::Config;
use crate::control::Request;
use crate::domain::{PersonKind, Recognition};
use crate::people::commands::{PeopleRequest, PhotoUpload};

#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// Add a person, enrolled from reference photos and/or catalogue faces.
    Add {
        name: String,
        #[arg(long, value_enum, default_value = "other")]
        kind: PersonKind,
        /// A reference in another register (staff number, case number).
        #[arg(long)]
        external_ref: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        /// A reference photo showing only this person (repeatable); stored
        /// in the enrolment collection.
        #[arg(long, value_name = "FILE")]
        photo: Vec<PathBuf>,
        /// A face already in the catalogue, ASSET_ID:NO (repeatable).
        #[arg(long, value_name = "FACE")]
        face: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// One line per person.
    List {
        /// Include persons merged into others.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// A person and their confirmed faces.
    Show {
        person: String,
        #[arg(long)]
        json: bool,
    },
    /// Merge FROM into INTO (recorded; `people undo` reverts it).
    Merge {
        into: String,
        from: String,
        #[arg(long)]
        json: bool,
    },
    /// Move some confirmed faces of PERSON to a new person.
    Split {
        person: String,
        #[arg(long = "face", value_name = "FACE", required = true)]
        faces: Vec<String>,
        /// Name of the new person.
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Undo a merge or split (the latest one, or operation SEQ).
    Undo {
        seq: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Merges, splits and undos, newest first.
    History {
        #[arg(long)]
        json: bool,
    },
    /// Change a person's kind or date of birth (what decides whether a
    /// guardian must sign their consent).
    Set {
        person: String,
        #[arg(long, value_enum)]
        kind: Option<PersonKind>,
        /// Date of birth (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        born: Option<jiff::civil::Date>,
        #[arg(long)]
        json: bool,
    },
    /// Set the person's basis for face recognition. `opted-out` deletes every
    /// template of the person for good (one suppression template is kept so
    /// new photos of them are neither matched nor stored).
    Recognition {
        person: String,
        #[arg(value_enum)]
        basis: RecognitionArg,
        #[arg(long)]
        json: bool,
    },
    /// Run the template purge and the re-clustering now (the daemon also
    /// runs them every people.maintenance_interval).
    Maintain {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RecognitionArg {
    Allowed,
    OptedOut,
    NoBasis,
}

#[derive(Debug, Subcommand)]
pub enum FaceDecision {
    /// This face is PERSON (id or exact name).
    Confirm {
        face: String,
        person: String,
        #[arg(long)]
        json: bool,
    },
    /// Not this person: the face's suggested or confirmed person (or
    /// --person) is never suggested for it again.
    Reject {
        face: String,
        #[arg(long)]
        person: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Not a face: its template is deleted; never matched or clustered.
    NotAFace {
        face: String,
        #[arg(long)]
        json: bool,
    },
    /// Incidental (a background crowd): the face no longer blocks usage
    /// decisions; --undo clears the mark.
    Incidental {
        face: String,
        #[arg(long)]
        undo: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the face engine again on stored photos (all, or the ASSET ids);
    /// every decision is kept by box overlap.
    Redetect {
        assets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClustersCommand {
    /// Clusters of unknown faces, largest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Confirm a cluster's faces as PERSON (existing id or name, or a new person).
    Name {
        cluster: String,
        person: String,
        /// Kind of a new person.
        #[arg(long, value_enum, default_value = "other")]
        kind: PersonKind,
        #[arg(long)]
        json: bool,
    },
    /// Leave a cluster's faces unknown and out of clustering.
    Dismiss {
        cluster: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("query").required(true).args(["person", "photo", "face"])))]
pub struct SearchArgs {
    /// Every photo with a confirmed face of PERSON.
    #[arg(long)]
    person: Option<String>,
    /// Faces like each face in FILE, over all stored faces.
    #[arg(long, value_name = "FILE")]
    photo: Option<PathBuf>,
    /// Faces like a stored face, ASSET_ID:NO.
    #[arg(long, value_name = "FACE")]
    face: Option<String>,
    /// Hits per query face.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Only hits closer than this (dlib scale).
    #[arg(long, default_value_t = 0.6)]
    max_distance: f32,
    #[arg(long)]
    json: bool,
}

impl PeopleCommand {
    pub fn request(self) -> anyhow::Result<(PeopleRequest, bool)> {
        Ok(match self {
            PeopleCommand::Add {
                name,
                kind,
                external_ref,
                notes,
                photo,
                face,
                json,
            } => {
                let photos = photo
                    .iter()
                    .map(|p| {
                        PhotoUpload::read(p).with_context(|| format!("cannot read {}", p.display()))
                    })
                    .collect::<anyhow::Result<_>>()?;
                (
                    PeopleRequest::Add {
                        name,
                        kind,
                        external_ref,
                        notes,
                        photos,
                        faces: face,
                    },
                    json,
                )
            }
            PeopleCommand::List { all, json } => (PeopleRequest::List { all }, json),
            PeopleCommand::Show { person, json } => (PeopleRequest::Show { person }, json),
            PeopleCommand::Merge { into, from, json } => {
                (PeopleRequest::Merge { into, from }, json)
            }
            PeopleCommand::Split {
                person,
                faces,
                name,
                json,
            } => (
                PeopleRequest::Split {
                    person,
                    faces,
                    name,
                },
                json,
            ),
            PeopleCommand::Undo { seq, json } => (PeopleRequest::Undo { seq }, json),
            PeopleCommand::History { json } => (PeopleRequest::History, json),
            PeopleCommand::Set {
                person,
                kind,
                born,
                json,
            } => (PeopleRequest::Set { person, kind, born }, json),
            PeopleCommand::Recognition {
                person,
                basis,
                json,
            } => (
                PeopleRequest::Recognition {
                    person,
                    recognition: match basis {
                        RecognitionArg::Allowed => Recognition::Allowed,
                        RecognitionArg::OptedOut => Recognition::OptedOut,
                        RecognitionArg::NoBasis => Recognition::NoBasis,
                    },
                },
                json,
            ),
            PeopleCommand::Maintain { json } => (PeopleRequest::Maintain, json),
        })
    }
}

impl FaceDecision {
    pub fn request(self) -> (PeopleRequest, bool) {
        match self {
            FaceDecision::Confirm { face, person, json } => {
                (PeopleRequest::Confirm { face, person }, json)
            }
            FaceDecision::Reject { face, person, json } => {
                (PeopleRequest::Reject { face, person }, json)
            }
            FaceDecision::NotAFace { face, json } => (PeopleRequest::NotAFace { face }, json),
            FaceDecision::Incidental { face, undo, json } => (
                PeopleRequest::Incidental {
                    face,
                    incidental: !undo,
                },
                json,
            ),
            FaceDecision::Redetect { assets, json } => (PeopleRequest::Redetect { assets }, json),
        }
    }
}

impl ClustersCommand {
    pub fn request(self) -> (PeopleRequest, bool) {
        match self {
            ClustersCommand::List { json } => (PeopleRequest::ClustersList, json),
            ClustersCommand::Name {
                cluster,
                person,
                kind,
                json,
            } => (
                PeopleRequest::ClustersName {
                    cluster,
                    person,
                    kind,
                },
                json,
            ),
            ClustersCommand::Dismiss { cluster, json } => {
                (PeopleRequest::ClustersDismiss { cluster }, json)
            }
        }
    }
}

impl SearchArgs {
    pub fn request(self) -> anyhow::Result<(PeopleRequest, bool)> {
        let request = if let Some(person) = self.person {
            PeopleRequest::SearchPerson { person }
        } else if let Some(path) = &self.photo {
            PeopleRequest::SearchPhoto {
                photo: PhotoUpload::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                limit: self.limit,
                max_distance: self.max_distance,
            }
        } else {
            PeopleRequest::SearchFace {
                face: self.face.unwrap_or_default(),
                limit: self.limit,
                max_distance: self.max_distance,
            }
        };
        Ok((request, self.json))
    }
}

/// Sends the request and prints the answer: JSON lines, or a short text line each.
pub fn run(
    config: &Config,
    daemon: bool,
    request: PeopleRequest,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    query(config, daemon, &Request::People { request }, &mut |line| {
        if json {
            return writeln!(out, "{line}");
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
        writeln!(out, "{}", human(&value))
    })
}

/// One answer line for people to read.
fn human(value: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let person = if value["person"].is_object() {
        &value["person"]
    } else {
        value
    };
    if person["recognition"].is_string() && person["name"].is_string() {
        let mut text = format!(
            "{}  {:<24} {:<8} recognition {:<10} {} face(s) in {} photo(s)",
            s(&person["id"]),
            s(&person["name"]),
            s(&person["kind"]),
            s(&person["recognition"]),
            person["confirmed_faces"],
            person["assets"]
        );
        if let Some(into) = person["merged_into"].as_str() {
            text.push_str(&format!("  (merged into {into})"));
        }
        if let Some(faces) = value["faces"].as_array() {
            for face in faces {
                text.push_str(&format!("\n  face {}", s(face)));
            }
        }
        return text;
    }
    if let Some(hit) = value.get("hit") {
        return format!(
            "{}  distance {:.3}  {}",
            s(&hit["face"]),
            hit["distance"].as_f64().unwrap_or(f64::NAN),
            hit["person_name"].as_str().unwrap_or("(unknown)")
        );
    }
    if value.get("size").is_some() && value.get("faces").is_some() {
        return format!("cluster {}  {} face(s)", s(&value["id"]), value["size"]);
    }
    value
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}: {}", s(v)))
                .collect::<Vec<_>>()
                .join("  ")
        })
        .unwrap_or_else(|| value.to_string())
}
