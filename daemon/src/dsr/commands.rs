//! `consentry dsr …` on the control socket. Each action is logged on the case
//! and produces audit events (pushed to `done` as each step succeeds).

use std::collections::BTreeSet;
use std::io::Write;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::case::{Case, Kind, Status, due_date};
use super::erase::{self, Mode};
use super::{details, load, open_for_change};
use crate::audit::Entry;
use crate::consent::commands::ExportedFile;
use crate::consent::model::Subject;
use crate::control::Context;
use crate::domain::{AssetId, Recognition};
use crate::people::commands::PhotoUpload;
use crate::pipeline::store::crypto::hex_encode;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DsrRequest {
    Open {
        person: String,
        kind: Kind,
        received: Option<Date>,
        notes: Option<String>,
    },
    /// Open cases (due within `within_days`, overdue ones included, when
    /// given); `all`: closed ones too.
    List {
        within_days: Option<i32>,
        all: bool,
    },
    Show {
        id: String,
    },
    Extend {
        id: String,
        months: i8,
        reason: String,
    },
    Find {
        id: String,
        reference: Option<PhotoUpload>,
        max_distance: Option<f32>,
        /// Also run the face engine over photos in collections without
        /// recognition (no templates there); what it computes is compared
        /// with the reference and dropped, never stored.
        #[serde(default)]
        scan: bool,
    },
    Package {
        id: String,
    },
    Erase {
        id: String,
        assets: Vec<String>,
        mode: Mode,
    },
    Restrict {
        id: String,
        lift: bool,
        opt_out_recognition: bool,
    },
    Close {
        id: String,
        result: String,
    },
    Recipients {
        id: String,
    },
}

impl DsrRequest {
    pub fn needs_engine(&self) -> bool {
        matches!(
            self,
            DsrRequest::Find {
                reference: Some(_),
                ..
            }
        )
    }
}

/// What is recorded whatever the outcome (the case-level event).
pub fn entries(request: &DsrRequest) -> Vec<Entry> {
    let case = |id: &str| format!("case:{id}");
    vec![match request {
        DsrRequest::Open { person, kind, .. } => {
            Entry::new("dsr.open", format!("person:{person}")).with("kind", kind.as_str())
        }
        DsrRequest::List { .. } => Entry::new("dsr.list", "cases"),
        DsrRequest::Show { id } => Entry::new("dsr.view", case(id)),
        DsrRequest::Extend { id, months, .. } => {
            Entry::new("dsr.extend", case(id)).with("months", months)
        }
        DsrRequest::Find {
            id,
            reference,
            scan,
            ..
        } => Entry::new("dsr.find", case(id))
            .with("reference_photo", reference.is_some())
            .with("scan", scan),
        DsrRequest::Package { id } => Entry::new("dsr.package", case(id)),
        DsrRequest::Erase { id, assets, mode } => Entry::new("dsr.erase", case(id))
            .with("mode", format!("{mode:?}").to_lowercase())
            .with(
                "assets",
                if assets.is_empty() {
                    "all".to_owned()
                } else {
                    assets.len().to_string()
                },
            ),
        DsrRequest::Restrict { id, lift, .. } => Entry::new(
            if *lift {
                "dsr.restriction_lifted"
            } else {
                "dsr.restrict"
            },
            case(id),
        ),
        DsrRequest::Close { id, .. } => Entry::new("dsr.close", case(id)),
        DsrRequest::Recipients { id } => Entry::new("dsr.recipients", case(id)),
    }]
}

fn line(out: &mut dyn Write, value: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    text.push('\n');
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

/// A case as listed.
#[derive(Debug, Serialize)]
struct CaseLine<'a> {
    #[serde(flatten)]
    case: &'a Case,
    person_name: Option<String>,
    overdue: bool,
    days_left: i32,
}

fn case_line<'a>(ctx: &Context<'_>, case: &'a Case, today: Date) -> CaseLine<'a> {
    CaseLine {
        case,
        person_name: ctx.people.name_of(&case.person),
        overdue: case.overdue_on(today),
        days_left: (case.due - today).get_days(),
    }
}

fn save(ctx: &Context<'_>, case: &Case) -> Result<(), String> {
    ctx.store
        .put_case(&case.id, case)
        .map_err(|e| e.to_string())
}

pub fn answer(
    request: &DsrRequest,
    ctx: &Context<'_>,
    out: &mut dyn Write,
    done: &mut Vec<Entry>,
) -> Result<(), String> {
    let by = ctx.actor.name.as_str();
    let today = ctx.rights.today();
    match request {
        DsrRequest::Open {
            person,
            kind,
            received,
            notes,
        } => {
            let person = ctx.people.resolve(person).map_err(|e| e.to_string())?;
            let received = received.unwrap_or(today);
            if received > today {
                return Err(format!("received {received} is in the future"));
            }
            let mut case = Case {
                id: super::next_case_id(ctx.store, received.year())?,
                person: person.id.to_string(),
                kind: *kind,
                received,
                due: due_date(received, 0),
                extensions: vec![],
                status: Status::Open,
                result: None,
                notes: notes.clone(),
                found: vec![],
                actions: vec![],
                opened_at_ms: crate::clock::now_ms(),
                opened_by: by.to_owned(),
                closed_at_ms: None,
            };
            case.log(by, "open", details(&[("kind", kind.as_str().to_owned())]));
            save(ctx, &case)?;
            line(out, &case_line(ctx, &case, today))
        }
        DsrRequest::List { within_days, all } => {
            let horizon = match within_days {
                Some(days) => Some(
                    today
                        .checked_add(jiff::Span::new().days(*days))
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            let mut cases: Vec<Case> = ctx.store.cases().map_err(|e| e.to_string())?;
            cases.sort_by(|a, b| (a.due, &a.id).cmp(&(b.due, &b.id)));
            for case in &cases {
                if *all || (case.status == Status::Open && horizon.is_none_or(|h| case.due <= h)) {
                    line(out, &case_line(ctx, case, today))?;
                }
            }
            Ok(())
        }
        DsrRequest::Show { id } => {
            let case = load(ctx.store, id)?;
            line(out, &case_line(ctx, &case, today))
        }
        DsrRequest::Extend { id, months, reason } => {
            let mut case = open_for_change(ctx.store, id)?;
            case.extend(*months, reason, by, crate::clock::now_ms())?;
            case.log(
                by,
                "extend",
                details(&[
                    ("months", months.to_string()),
                    ("reason", reason.clone()),
                    ("due", case.due.to_string()),
                ]),
            );
            save(ctx, &case)?;
            line(out, &case_line(ctx, &case, today))
        }
        DsrRequest::Find {
            id,
            reference,
            max_distance,
            scan,
        } => {
            let mut case = open_for_change(ctx.store, id)?;
            if *scan && reference.is_none() {
                return Err("--scan compares photos with a reference photo: add --photo".into());
            }
            let found = find(
                ctx,
                &case,
                reference.as_ref(),
                max_distance.unwrap_or(0.55),
                *scan,
            )?;
            let count = |how: &str| found.iter().filter(|f| f.how == how).count().to_string();
            let scanned = count("scanned");
            case.log(
                by,
                "find",
                details(&[
                    ("confirmed", count("confirmed")),
                    ("suggested", count("suggested")),
                    ("similar", count("similar")),
                    ("scanned", scanned),
                ]),
            );
            case.found = found;
            save(ctx, &case)?;
            for f in &case.found {
                line(out, f)?;
            }
            Ok(())
        }
        DsrRequest::Package { id } => {
            let mut case = open_for_change(ctx.store, id)?;
            let contact = if ctx.config.register.dpo_contact.is_empty() {
                "the organisation's data-protection officer".to_owned()
            } else {
                ctx.config.register.dpo_contact.clone()
            };
            let (zip, assets) = super::access_package(
                ctx.store, ctx.people, ctx.rights, ctx.audit, &case, &contact, today,
            )?;
            for asset in &assets {
                done.push(
                    Entry::new("asset.download", format!("asset:{asset}"))
                        .with("case", &case.id)
                        .with("to", "data subject (access package)"),
                );
            }
            case.log(
                by,
                "package",
                details(&[
                    ("photos", assets.len().to_string()),
                    ("bytes", zip.len().to_string()),
                ]),
            );
            save(ctx, &case)?;
            line(
                out,
                &ExportedFile {
                    name: format!("{}-access-package.zip", case.id),
                    hex: hex_encode(&zip),
                },
            )
        }
        DsrRequest::Erase { id, assets, mode } => {
            let mut case = open_for_change(ctx.store, id)?;
            let person = ctx
                .people
                .resolve(&case.person)
                .map_err(|e| e.to_string())?;
            let (_, confirmed) = ctx
                .people
                .assets_of(&case.person)
                .map_err(|e| e.to_string())?;
            let targets: Vec<AssetId> = if assets.is_empty() {
                confirmed.iter().map(|(a, _)| a.clone()).collect()
            } else {
                assets
                    .iter()
                    .map(|a| AssetId::parse(a).ok_or_else(|| format!("`{a}` is not an asset id")))
                    .collect::<Result<_, _>>()?
            };
            // Art. 19: whom to tell, before the evidence of the assets goes.
            let recipients =
                super::recipients(ctx.audit, &targets.iter().cloned().collect::<BTreeSet<_>>())?;
            let ledger = super::ledger::Ledger::new(&ctx.config.store.erasure_ledger);
            for target in &targets {
                let asset = ctx
                    .store
                    .asset(target)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no asset {target}"))?;
                let result = erase::erase_photo(
                    ctx.store,
                    &ledger,
                    &asset,
                    &person.id,
                    *mode,
                    &case.id,
                    &ctx.config.ingest.thumbnail_sizes,
                )?;
                done.push(
                    Entry::new(
                        if result.how == "redacted" {
                            "asset.redact"
                        } else {
                            "asset.erase"
                        },
                        format!("asset:{target}"),
                    )
                    .with("case", &case.id),
                );
                case.log(by, result.how, details(&[("asset", target.to_string())]));
                line(out, &result)?;
            }
            if assets.is_empty() {
                let purged = erase::forget_person(ctx.people, &ledger, &person.id, &case.id)?;
                done.push(
                    Entry::new("person.templates.erase", format!("person:{}", person.id))
                        .with("case", &case.id)
                        .with("templates", purged),
                );
                case.log(
                    by,
                    "templates erased",
                    details(&[("templates", purged.to_string())]),
                );
            } else {
                ctx.people.reload().map_err(|e| e.to_string())?;
            }
            for r in &recipients {
                line(
                    out,
                    &serde_json::json!({
                        "notify": { "at": r.at(), "actor": r.actor, "action": r.action, "asset": r.object.trim_start_matches("asset:"), "details": r.details }
                    }),
                )?;
            }
            case.log(
                by,
                "recipients listed",
                details(&[("recipients", recipients.len().to_string())]),
            );
            save(ctx, &case)
        }
        DsrRequest::Restrict {
            id,
            lift,
            opt_out_recognition,
        } => {
            let mut case = open_for_change(ctx.store, id)?;
            let person = ctx
                .people
                .resolve(&case.person)
                .map_err(|e| e.to_string())?;
            ctx.rights
                .restrict(
                    Subject::Person(person.id.clone()),
                    !lift,
                    &format!("DSR case {}", case.id),
                    by,
                )
                .map_err(|e| e.to_string())?;
            done.push(
                Entry::new(
                    if *lift {
                        "restriction.lift"
                    } else {
                        "restriction.add"
                    },
                    format!("person:{}", person.id),
                )
                .with("case", &case.id),
            );
            if *opt_out_recognition && !lift {
                let purged = ctx
                    .people
                    .set_recognition(person.id.as_str(), Recognition::OptedOut)
                    .map_err(|e| e.to_string())?;
                done.push(
                    Entry::new("person.recognition", format!("person:{}", person.id))
                        .with("recognition", "opted-out")
                        .with("case", &case.id),
                );
                case.log(
                    by,
                    "recognition opt-out",
                    details(&[("templates_purged", purged.to_string())]),
                );
            }
            case.log(
                by,
                if *lift {
                    "restriction lifted"
                } else {
                    "restricted"
                },
                Default::default(),
            );
            save(ctx, &case)?;
            line(out, &case_line(ctx, &case, today))
        }
        DsrRequest::Close { id, result } => {
            let mut case = open_for_change(ctx.store, id)?;
            if result.trim().is_empty() {
                return Err("closing a case needs its result (what was done and told)".into());
            }
            case.status = Status::Closed;
            case.result = Some(result.trim().to_owned());
            case.closed_at_ms = Some(crate::clock::now_ms());
            case.log(
                by,
                "close",
                details(&[("result", result.trim().to_owned())]),
            );
            save(ctx, &case)?;
            line(out, &case_line(ctx, &case, today))
        }
        DsrRequest::Recipients { id } => {
            let case = load(ctx.store, id)?;
            let (_, assets) = ctx
                .people
                .assets_of(&case.person)
                .map_err(|e| e.to_string())?;
            let set = assets.into_iter().map(|(a, _)| a).collect();
            for r in super::recipients(ctx.audit, &set)? {
                line(out, &r)?;
            }
            Ok(())
        }
    }
}

/// Confirmed faces of the person, faces suggested as them, and (with a
/// reference photo) stored faces near its faces.
fn find(
    ctx: &Context<'_>,
    case: &Case,
    reference: Option<&PhotoUpload>,
    max_distance: f32,
    scan: bool,
) -> Result<Vec<super::case::FoundFace>, String> {
    use super::case::FoundFace;
    let person = ctx
        .people
        .resolve(&case.person)
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let (_, confirmed) = ctx
        .people
        .assets_of(&case.person)
        .map_err(|e| e.to_string())?;
    for (asset, nos) in confirmed {
        for no in nos {
            seen.insert(format!("{asset}:{no}"));
            found.push(FoundFace {
                face: format!("{asset}:{no}"),
                asset: asset.to_string(),
                how: "confirmed".into(),
                distance: None,
            });
        }
    }
    for asset in ctx.store.assets() {
        let asset = asset.map_err(|e| e.to_string())?;
        for face in &asset.faces {
            if let Some((p, d)) = face.attribution.suggested()
                && *p == person.id
                && seen.insert(face.face_ref(&asset.id).to_string())
            {
                found.push(FoundFace {
                    face: face.face_ref(&asset.id).to_string(),
                    asset: asset.id.to_string(),
                    how: "suggested".into(),
                    distance: Some(d),
                });
            }
        }
    }
    if let Some(photo) = reference {
        let ingestor = ctx
            .ingestor
            .ok_or("a search from a reference photo needs the face engine, which is not loaded")?;
        let faces = crate::people::commands::detect(ingestor, photo)?;
        if faces.is_empty() {
            return Err(format!(
                "{}: no face found in the reference photo",
                photo.name
            ));
        }
        for face in &faces {
            for hit in ctx.people.similar(&face.embedding, 200, max_distance, None) {
                if seen.insert(hit.face.clone()) {
                    found.push(FoundFace {
                        face: hit.face,
                        asset: hit.asset,
                        how: "similar".into(),
                        distance: Some(hit.distance),
                    });
                }
            }
        }
        if scan {
            let references: Vec<&[f32]> = faces.iter().map(|f| f.embedding.as_slice()).collect();
            for hit in scan_unindexed(ctx, ingestor, &references, max_distance)? {
                if seen.insert(hit.face.clone()) {
                    found.push(hit);
                }
            }
        }
    }
    Ok(found)
}

/// Photos in collections without recognition hold no templates: run the
/// engine over their originals and compare each face with the reference
/// faces. The embeddings computed here are dropped, never stored; a face
/// found is matched to the stored face at the same place (box overlap).
fn scan_unindexed(
    ctx: &Context<'_>,
    ingestor: &crate::pipeline::ingest::Ingestor,
    references: &[&[f32]],
    max_distance: f32,
) -> Result<Vec<super::case::FoundFace>, String> {
    let mut found = Vec::new();
    for asset in ctx.store.assets() {
        let asset = asset.map_err(|e| e.to_string())?;
        if asset.faces.is_empty() || ctx.people.config().recognises(&asset.collection) {
            continue;
        }
        let Some(original) = &asset.original else {
            continue;
        };
        let bytes = ctx
            .store
            .read_blob(&asset, original)
            .map_err(|e| e.to_string())?;
        let image = match crate::pipeline::decode::decode_upright(&bytes, ingestor.limits()) {
            Ok(image) => image,
            Err(err) => {
                log::warn!(target: "consentry::dsr", asset_id = asset.id.as_str(); "scan: cannot decode: {err}");
                continue;
            }
        };
        let faces = ingestor
            .faces()
            .process(&image)
            .map_err(|e| format!("asset {}: face engine: {e}", asset.id))?;
        for face in &faces {
            let Some(distance) = references
                .iter()
                .map(|r| crate::people::index::distance(r, &face.embedding))
                .min_by(f32::total_cmp)
                .filter(|d| *d <= max_distance)
            else {
                continue;
            };
            let stored = asset
                .faces
                .iter()
                .map(|s| (s, s.bbox.iou(&face.bbox)))
                .filter(|(_, iou)| *iou >= 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((stored, _)) = stored {
                found.push(super::case::FoundFace {
                    face: stored.face_ref(&asset.id).to_string(),
                    asset: asset.id.to_string(),
                    how: "scanned".into(),
                    distance: Some(distance),
                });
            }
        }
    }
    Ok(found)
}
