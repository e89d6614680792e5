//! The dashboard: each section shown to the roles it concerns. Recent photos
//! and blocked photos per purpose (photo roles, within their collections),
//! consents expiring and withdrawals (editors, privacy officer), requests due
//! (privacy officer), ingest queue and workers (everyone: counts only), and
//! quarantined files (admin, privacy officer, and editors for their
//! collections). The ingest numbers update live from `/status.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use consentry_web::warp::http::StatusCode;

use super::Fail;
use crate::consent::commands::RightsRequest;
use crate::console::Call;
use crate::console::authz::{self, Permission};
use crate::console::http::Resp;
use crate::console::render::{esc, s, table};
use crate::control::Request;
use crate::domain::AssetStatus;
use crate::dsr::commands::DsrRequest;

/// Queue and catalogue numbers: no personal data, for every signed-in user.
fn live_numbers(call: &Call) -> Result<serde_json::Value, Fail> {
    let store = &call.console.store;
    let queue = store
        .queue_summary(crate::clock::now_ms())
        .map_err(Fail::internal)?;
    let counts = store.counts().map_err(Fail::internal)?;
    let workers: Vec<serde_json::Value> = call
        .console
        .registry
        .snapshot()
        .into_iter()
        .map(|w| serde_json::json!({"name": w.name, "state": format!("{:?}", w.state).to_lowercase(), "detail": w.detail, "done": w.done, "failed": w.failed}))
        .collect();
    Ok(serde_json::json!({
        "queue": { "waiting": queue.waiting, "running": queue.running, "retrying": queue.retrying, "depth": queue.waiting + queue.running + queue.retrying },
        "assets": counts.by_status,
        "workers": workers,
    }))
}

/// `2026-11-23T15:49:06.123Z` as `2026-11-23 15:49 UTC`.
fn withdrawn_at(text: &str) -> String {
    match (text.get(..16), text.ends_with('Z')) {
        (Some(head), true) => format!("{} UTC", head.replacen('T', " ", 1)),
        _ => text.to_owned(),
    }
}

pub fn live(call: &Call) -> Result<Resp, Fail> {
    Ok(Resp::json(StatusCode::OK, &live_numbers(call)?))
}

pub fn page(call: &Call) -> Result<Resp, Fail> {
    let grants = &call.user.grants;
    let numbers = live_numbers(call)?;
    let mut html = String::new();
    // Ingest, live.
    let count = |k: &str| numbers["assets"][k].as_u64().unwrap_or(0);
    let _ = write!(
        html,
        "<section class=\"card\" id=\"ingest\"><h2>Ingest</h2><p class=\"stats\">\
<span>queue <strong data-live=\"queue.depth\" id=\"queue-depth\">{}</strong></span>\
<span>ready <strong data-live=\"assets.ready\" id=\"assets-ready\">{}</strong></span>\
<span>quarantined <strong data-live=\"assets.quarantined\">{}</strong></span></p><ul class=\"workers\" id=\"workers\">",
        numbers["queue"]["depth"].as_u64().unwrap_or(0),
        count("ready"),
        count("quarantined"),
    );
    for w in numbers["workers"].as_array().into_iter().flatten() {
        let _ = write!(
            html,
            "<li><strong>{}</strong> {} <span class=\"muted\">{}</span></li>",
            esc(s(w, "name")),
            esc(s(w, "state")),
            esc(s(w, "detail"))
        );
    }
    html.push_str("</ul></section>");

    // Photos: recent, blocked per purpose, quarantined (scoped per photo).
    let mut persons_seen = BTreeSet::new();
    if authz::holds(grants, Permission::PhotoView) || authz::holds(grants, Permission::SystemStatus)
    {
        let mut recent = Vec::new();
        let mut blocked: BTreeMap<String, usize> = BTreeMap::new();
        let mut quarantined = Vec::new();
        let officer_or_admin = authz::holds(grants, Permission::SystemStatus);
        for asset in call.console.store.assets() {
            let asset = asset.map_err(Fail::internal)?;
            let in_scope = authz::sees_collection(grants, Permission::PhotoView, &asset.collection);
            if asset.status == AssetStatus::Quarantined {
                if officer_or_admin || (in_scope && authz::holds(grants, Permission::FaceEdit)) {
                    quarantined.push(asset);
                }
                continue;
            }
            if !in_scope {
                continue;
            }
            let facts = super::photos::photo_facts(call.console, call.people(), &asset, true);
            let allowed = authz::check(
                grants,
                Permission::PhotoView,
                authz::Scope::Photo {
                    collection: &asset.collection,
                    restricted: facts.restricted,
                    usable: facts.usable(),
                },
            );
            if allowed.is_err() {
                continue;
            }
            for d in facts.decisions.iter().flatten() {
                if !d.allowed {
                    *blocked.entry(d.purpose.clone()).or_default() += 1;
                }
            }
            persons_seen.extend(
                asset
                    .faces
                    .iter()
                    .filter_map(|f| f.attribution.confirmed().cloned()),
            );
            recent.push(asset);
        }
        if authz::holds(grants, Permission::PhotoView) {
            recent.sort_by_key(|a| std::cmp::Reverse(a.created_at_ms));
            html.push_str("<section class=\"card\"><h2>Recent photos</h2><ul class=\"grid small\" id=\"recent\">");
            for a in recent.iter().take(12) {
                let name = a.sources.first().map(|s| s.path.as_str()).unwrap_or("");
                let _ = write!(
                    html,
                    "<li><a href=\"/photos/{id}\" data-asset=\"{id}\"><img src=\"/photos/{id}/thumb\" alt=\"\"><span class=\"name\">{}</span></a></li>",
                    esc(name),
                    id = a.id
                );
            }
            html.push_str("</ul>");
            if recent.is_empty() {
                html.push_str(
                    "<p class=\"empty\">No photos yet: files dropped into a share appear here.</p>",
                );
            }
            html.push_str("<p><a href=\"/photos\">All photos</a></p></section>");
            let rows: Vec<String> = call
                .console
                .rights
                .config()
                .purposes
                .iter()
                .map(|p| {
                    let n = blocked.get(p).copied().unwrap_or(0);
                    format!("<tr><td>{}</td><td><a href=\"/photos?purpose={}&amp;verdict=blocked\">{n}</a></td></tr>", esc(p), crate::console::render::q(p))
                })
                .collect();
            let _ = write!(
                html,
                "<section class=\"card\" id=\"blocked\"><h2>Blocked photos per purpose (today)</h2>{}</section>",
                table(&["Purpose", "Blocked"], &rows)
            );
        }
        if !quarantined.is_empty() || officer_or_admin {
            let rows: Vec<String> = quarantined
                .iter()
                .map(|a| {
                    let name = a.sources.first().map(|s| s.path.as_str()).unwrap_or("");
                    let reason = a
                        .quarantine
                        .as_ref()
                        .map(|q| q.reason.as_str())
                        .unwrap_or("");
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(name),
                        esc(&a.collection),
                        esc(reason)
                    )
                })
                .collect();
            let _ = write!(
                html,
                "<section class=\"card\" id=\"quarantine\"><h2>Quarantined files</h2>{}</section>",
                table(&["File", "Collection", "Why"], &rows)
            );
        }
    }

    // Consents expiring and withdrawn (persons the user may see).
    if authz::holds(grants, Permission::ConsentEdit) {
        let officer = authz::holds(grants, Permission::Dsr);
        let visible = |person: &str| {
            officer
                || crate::domain::PersonId::parse(person).is_some_and(|p| persons_seen.contains(&p))
        };
        let expiring = call.ask(Request::Rights {
            request: Box::new(RightsRequest::ReportExpiring { days: None }),
        })?;
        let rows: Vec<String> = expiring
            .first()
            .and_then(|r| r["consents"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|c| visible(s(c, "person")))
            .map(|c| {
                format!(
                    "<tr><td><a href=\"/people/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
                    esc(s(c, "person")),
                    esc(s(c, "person_name")),
                    esc(s(c, "valid_until")),
                    c["days_left"]
                )
            })
            .collect();
        let _ = write!(
            html,
            "<section class=\"card\" id=\"expiring\"><h2>Consents expiring</h2>{}</section>",
            table(&["Person", "Valid until", "Days left"], &rows)
        );
        let since = call
            .console
            .rights
            .today()
            .checked_sub(jiff::Span::new().days(30))
            .ok();
        let withdrawn = call.ask(Request::Rights {
            request: Box::new(RightsRequest::ReportWithdrawn { since }),
        })?;
        let rows: Vec<String> = withdrawn
            .iter()
            .filter(|c| visible(s(c, "person")))
            .map(|c| {
                format!(
                    "<tr><td><a href=\"/people/{}\">{}</a></td><td>{}</td></tr>",
                    esc(s(c, "person")),
                    esc(s(c, "person_name")),
                    esc(&withdrawn_at(c["withdrawn_at"].as_str().unwrap_or("")))
                )
            })
            .collect();
        let _ = write!(
            html,
            "<section class=\"card\" id=\"withdrawals\"><h2>Withdrawals (30 days)</h2>{}</section>",
            table(&["Person", "Withdrawn"], &rows)
        );
    }

    // Requests due.
    if authz::holds(grants, Permission::Dsr) {
        let cases = call.ask(Request::Dsr {
            request: Box::new(DsrRequest::List {
                within_days: Some(7),
                all: false,
            }),
        })?;
        let rows: Vec<String> = cases
            .iter()
            .map(|c| format!("<tr><td><a href=\"/dsr/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(s(c, "kind")), esc(s(c, "person_name")), esc(s(c, "due")), id = esc(s(c, "id"))))
            .collect();
        let _ = write!(
            html,
            "<section class=\"card\" id=\"dsr-due\"><h2>Requests due this week</h2>{}</section>",
            table(&["Case", "Kind", "Person", "Due"], &rows)
        );
    }
    Ok(call.page(
        "Dashboard",
        &format!("<div class=\"dashboard\">{html}</div>"),
    ))
}
