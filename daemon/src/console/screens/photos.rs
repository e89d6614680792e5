//! Photos: the grid with filters, the photo page (face boxes, names, the
//! usage decision per purpose with reasons, metadata, licence), thumbnails,
//! face crops and downloads. Every byte of a photo that leaves is audited
//! first (`asset.thumbnail`, `asset.download`, `face.crop`, or the export's
//! own event for a redacted copy).

use std::fmt::Write;

use consentry_web::warp::http::StatusCode;
use jiff::civil::Date;

use super::{Fail, done};
use crate::audit::Entry;
use crate::consent::commands::RightsRequest;
use crate::consent::decide::Decision;
use crate::consent::model::{LicenceScope, LicenceTerms, Subject};
use crate::console::authz::{self, Permission, Role, Scope};
use crate::console::http::Resp;
use crate::console::render::{button_with, csrf_field, esc, q, s, table, verdict};
use crate::console::{Call, Console};
use crate::control::Request;
use crate::domain::{Asset, AssetId, AssetStatus, Identity};
use crate::people::People;
use crate::people::commands::PeopleRequest;

/// What authorisation needs to know of a photo.
pub struct PhotoFacts {
    pub restricted: bool,
    /// Decisions for every purpose today, when they were needed.
    pub decisions: Option<Vec<Decision>>,
}

impl PhotoFacts {
    pub fn usable(&self) -> bool {
        self.decisions
            .as_ref()
            .is_some_and(|d| d.iter().any(|d| d.allowed))
    }
}

/// The restriction state of a photo (its own, or of a confirmed person in
/// it), and — when `with_decisions` — today's decisions.
pub fn photo_facts(
    console: &Console,
    people: &People,
    asset: &Asset,
    with_decisions: bool,
) -> PhotoFacts {
    let rights = &console.rights;
    let restricted = rights.restricted(&Subject::Asset(asset.id.clone()))
        || asset.faces.iter().any(|f| {
            f.attribution
                .confirmed()
                .is_some_and(|p| rights.restricted(&Subject::Person(p.clone())))
        });
    let decisions = with_decisions.then(|| rights.decide_all(people, asset, rights.today()));
    PhotoFacts {
        restricted,
        decisions,
    }
}

/// Whether the user's grants let a viewer grant decide (usability matters).
pub fn viewer_only(grants: &[authz::Grant], permission: Permission) -> bool {
    !grants
        .iter()
        .any(|g| g.role != Role::Viewer && authz::holds(std::slice::from_ref(g), permission))
}

/// `authz::check` for one photo of a list (the same check the router makes).
fn may_see(call: &Call, asset: &Asset, permission: Permission) -> Option<PhotoFacts> {
    let grants = &call.user.grants;
    if !authz::sees_collection(grants, permission, &asset.collection) {
        return None;
    }
    let facts = photo_facts(
        call.console,
        call.people(),
        asset,
        viewer_only(grants, permission),
    );
    authz::check(
        grants,
        permission,
        Scope::Photo {
            collection: &asset.collection,
            restricted: facts.restricted,
            usable: facts.usable(),
        },
    )
    .ok()
    .map(|_| facts)
}

fn asset_of(call: &Call) -> Result<Asset, Fail> {
    let id = AssetId::parse(call.param(0)).ok_or_else(Fail::not_found)?;
    call.console
        .store
        .asset(&id)
        .map_err(Fail::internal)?
        .ok_or_else(Fail::not_found)
}

fn date_param(call: &Call) -> Result<Date, Fail> {
    match call.req.query("date") {
        Some(text) => text
            .parse()
            .map_err(|_| Fail::bad(format!("`{text}` is not a date (YYYY-MM-DD)"))),
        None => Ok(call.console.rights.today()),
    }
}

// ---- the grid -------------------------------------------------------------------

struct Filters {
    collection: Option<String>,
    person: Option<String>,
    purpose: Option<String>,
    verdict: Option<String>,
    from: Option<Date>,
    to: Option<Date>,
    quarantined: bool,
}

impl Filters {
    fn read(call: &Call) -> Filters {
        let get = |k: &str| call.req.query(k).map(str::to_owned);
        Filters {
            collection: get("collection"),
            person: get("person"),
            purpose: get("purpose"),
            verdict: get("verdict"),
            from: call.req.query("from").and_then(|d| d.parse().ok()),
            to: call.req.query("to").and_then(|d| d.parse().ok()),
            quarantined: call.req.query("quarantined") == Some("1"),
        }
    }
}

struct Listed {
    asset: Asset,
    decisions: Vec<Decision>,
}

fn day_of(asset: &Asset) -> Option<Date> {
    let ts = jiff::Timestamp::from_millisecond(asset.created_at_ms as i64).ok()?;
    Some(ts.to_zoned(jiff::tz::TimeZone::UTC).date())
}

/// The photos the user may see that pass the filters, newest first.
fn listed(call: &Call, f: &Filters) -> Result<Vec<Listed>, Fail> {
    let person = match &f.person {
        Some(p) => Some(
            call.people()
                .resolve(p)
                .map_err(|e| Fail::bad(e.to_string()))?
                .id,
        ),
        None => None,
    };
    let mut out = Vec::new();
    for asset in call.console.store.assets() {
        let asset = asset.map_err(Fail::internal)?;
        if f.collection
            .as_ref()
            .is_some_and(|c| *c != asset.collection)
            || f.quarantined != (asset.status == AssetStatus::Quarantined)
            || f.from
                .is_some_and(|d| day_of(&asset).is_some_and(|a| a < d))
            || f.to.is_some_and(|d| day_of(&asset).is_some_and(|a| a > d))
        {
            continue;
        }
        if let Some(p) = &person
            && !asset
                .faces
                .iter()
                .any(|face| face.attribution.confirmed() == Some(p))
        {
            continue;
        }
        let Some(facts) = may_see(call, &asset, Permission::PhotoView) else {
            continue;
        };
        let decisions = match facts.decisions {
            Some(d) => d,
            None => {
                call.console
                    .rights
                    .decide_all(call.people(), &asset, call.console.rights.today())
            }
        };
        if let (Some(purpose), Some(want)) = (&f.purpose, &f.verdict) {
            let allowed = decisions.iter().any(|d| &d.purpose == purpose && d.allowed);
            if (want == "allowed") != allowed {
                continue;
            }
        }
        out.push(Listed { asset, decisions });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.asset.created_at_ms));
    Ok(out)
}

const PAGE: usize = 60;

fn select(name: &str, options: &[String], current: Option<&str>, any: &str) -> String {
    let mut html = format!(
        "<select name=\"{name}\" id=\"f-{name}\"><option value=\"\">{}</option>",
        esc(any)
    );
    for o in options {
        let sel = if Some(o.as_str()) == current {
            " selected"
        } else {
            ""
        };
        let _ = write!(html, "<option value=\"{0}\"{sel}>{0}</option>", esc(o));
    }
    html.push_str("</select>");
    html
}

pub fn grid(call: &Call) -> Result<Resp, Fail> {
    let f = Filters::read(call);
    let photos = listed(call, &f)?;
    let page: usize = call
        .req
        .query("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    call.audit(
        Entry::new("asset.list", "catalogue")
            .with("results", photos.len())
            .with("via", "grid"),
    )?;
    let collections: Vec<String> = {
        let counts = call.console.store.counts().map_err(Fail::internal)?;
        counts
            .by_collection
            .keys()
            .filter(|c| authz::sees_collection(&call.user.grants, Permission::PhotoView, c))
            .cloned()
            .collect()
    };
    let purposes = &call.console.rights.config().purposes;
    let mut html = String::new();
    let _ = write!(
        html,
        "<form class=\"filters\" method=\"get\" action=\"/photos\">{}\
<input type=\"text\" name=\"person\" id=\"f-person\" placeholder=\"Person\" value=\"{}\">{}\
<select name=\"verdict\" id=\"f-verdict\"><option value=\"\">allowed or blocked</option>\
<option value=\"allowed\"{}>allowed</option><option value=\"blocked\"{}>blocked</option></select>\
<label>from <input type=\"date\" name=\"from\" value=\"{}\"></label><label>to <input type=\"date\" name=\"to\" value=\"{}\"></label>\
<label><input type=\"checkbox\" name=\"quarantined\" value=\"1\"{}> quarantined</label><button type=\"submit\">Filter</button></form>",
        select(
            "collection",
            &collections,
            f.collection.as_deref(),
            "All collections"
        ),
        esc(f.person.as_deref().unwrap_or("")),
        select("purpose", purposes, f.purpose.as_deref(), "Any purpose"),
        if f.verdict.as_deref() == Some("allowed") {
            " selected"
        } else {
            ""
        },
        if f.verdict.as_deref() == Some("blocked") {
            " selected"
        } else {
            ""
        },
        f.from.map(|d| d.to_string()).unwrap_or_default(),
        f.to.map(|d| d.to_string()).unwrap_or_default(),
        if f.quarantined { " checked" } else { "" },
    );
    let _ = write!(
        html,
        "<p class=\"muted\">{} photo(s)</p><ul class=\"grid\" id=\"photo-grid\">",
        photos.len()
    );
    let shown_purpose = f.purpose.clone().or_else(|| purposes.first().cloned());
    for item in photos.iter().skip(page * PAGE).take(PAGE) {
        let a = &item.asset;
        let name = a.sources.first().map(|s| s.path.as_str()).unwrap_or("");
        let badge = match (&shown_purpose, a.status == AssetStatus::Quarantined) {
            (_, true) => "<span class=\"badge warn\">quarantined</span>".to_owned(),
            (Some(p), false) => {
                let allowed = item.decisions.iter().any(|d| &d.purpose == p && d.allowed);
                format!("{} {}", esc(p), verdict(allowed))
            }
            (None, false) => String::new(),
        };
        let thumb = if a.thumbnails.is_empty() {
            "<div class=\"nothumb\">no preview</div>".to_owned()
        } else {
            format!(
                "<img src=\"/photos/{}/thumb\" alt=\"\" loading=\"lazy\">",
                a.id
            )
        };
        let _ = write!(
            html,
            "<li class=\"card\"><a href=\"/photos/{id}\" data-asset=\"{id}\">{thumb}<span class=\"name\">{}</span></a>\
<span class=\"meta\">{} · {} face(s)</span>{badge}</li>",
            esc(name),
            esc(&a.collection),
            a.faces.len(),
            id = a.id,
        );
    }
    html.push_str("</ul>");
    if photos.len() > (page + 1) * PAGE {
        let mut next: Vec<(String, String)> = call
            .req
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        next.retain(|(k, _)| k != "page");
        next.push(("page".into(), (page + 1).to_string()));
        let query: Vec<String> = next
            .iter()
            .map(|(k, v)| format!("{}={}", q(k), q(v)))
            .collect();
        let _ = write!(
            html,
            "<p><a href=\"/photos?{}\">Next page</a></p>",
            esc(&query.join("&"))
        );
    }
    Ok(call.page("Photos", &html))
}

pub fn api_list(call: &Call) -> Result<Resp, Fail> {
    let f = Filters::read(call);
    let photos = listed(call, &f)?;
    call.audit(
        Entry::new("asset.list", "catalogue")
            .with("results", photos.len())
            .with("via", "api"),
    )?;
    let items: Vec<serde_json::Value> = photos
        .iter()
        .map(|p| {
            serde_json::json!({
                "asset": crate::api::AssetSummary::from(&p.asset),
                "allowed": p.decisions.iter().filter(|d| d.allowed).map(|d| d.purpose.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Resp::json(StatusCode::OK, &items))
}

// ---- one photo -------------------------------------------------------------------

fn face_label(call: &Call, face: &crate::domain::Face) -> (String, &'static str) {
    let name = |id: &crate::domain::PersonId| {
        call.people()
            .name_of(id.as_str())
            .unwrap_or_else(|| id.to_string())
    };
    match &face.attribution.identity {
        Some(Identity::Confirmed { person, .. }) => (name(person), "confirmed"),
        Some(Identity::Suggested { person, .. }) => (format!("{}?", name(person)), "suggested"),
        None if face.attribution.not_a_face => ("not a face".into(), "dismissed"),
        None => ("unknown".into(), "unknown"),
    }
}

pub fn page(call: &Call) -> Result<Resp, Fail> {
    let asset = asset_of(call)?;
    let date = date_param(call)?;
    // One `asset.view` event (with the override, if any) before the page.
    call.audit(Entry::new("asset.view", format!("asset:{}", asset.id)))?;
    let decisions = call.console.rights.decide_all(call.people(), &asset, date);
    let grants = &call.user.grants;
    let sees_faces = authz::holds(grants, Permission::FaceView)
        && authz::check(
            grants,
            Permission::FaceView,
            Scope::Photo {
                collection: &asset.collection,
                restricted: false,
                usable: true,
            },
        )
        .is_ok();
    let edits = authz::holds(grants, Permission::FaceEdit) && sees_faces;
    let id = asset.id.to_string();
    let mut html = String::new();
    let name = asset.sources.first().map(|s| s.path.as_str()).unwrap_or("");
    if call.overrides {
        html.push_str("<p class=\"error\" role=\"status\">This photo is restricted. You see it as privacy officer; the access is recorded.</p>");
    }
    // The photo with its face boxes (SVG: no inline styles, CSP-clean).
    let (w, h) = (asset.width.unwrap_or(1), asset.height.unwrap_or(1));
    let _ = write!(
        html,
        "<div class=\"photo-layout\"><figure class=\"photo\"><svg id=\"photo\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">",
        esc(name)
    );
    if !asset.thumbnails.is_empty() {
        let _ = write!(
            html,
            "<image href=\"/photos/{id}/thumb?size=large\" x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\"/>"
        );
    }
    if sees_faces {
        // Labels in the photo's own units: about 20 px on screen whatever
        // the photo's size (a fixed size is unreadable on a large photo and
        // covers a small one).
        let font = (w.max(h) as f32 * 0.028).max(1.0);
        for face in &asset.faces {
            let (label, kind) = face_label(call, face);
            let b = &face.bbox;
            let _ = write!(
                html,
                "<g class=\"face {kind}\" data-face=\"{no}\"><rect x=\"{:.0}\" y=\"{:.0}\" width=\"{:.0}\" height=\"{:.0}\"/>\
<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"{font:.0}\" stroke-width=\"{:.1}\">{no}: {}</text></g>",
                b.x,
                b.y,
                b.width,
                b.height,
                b.x,
                (b.y - font / 4.0).max(font),
                font / 6.0,
                esc(&label),
                no = face.no
            );
        }
    }
    html.push_str("</svg>");
    let _ = write!(
        html,
        "<figcaption>{} · {} · {}×{}</figcaption></figure><div class=\"side\">",
        esc(name),
        esc(&asset.collection),
        w,
        h
    );
    // Decisions.
    let mut rows = Vec::new();
    for d in &decisions {
        let reasons: Vec<String> = d
            .reasons
            .iter()
            // Every reason: what allows the use, or what blocks it (the
            // reasons that merely hold beside a block are muted).
            .map(|r| {
                if d.allowed || r.blocking {
                    esc(&r.message)
                } else {
                    format!("<span class=\"muted\">{}</span>", esc(&r.message))
                }
            })
            .collect();
        let redacted = if !d.allowed && d.reasons.iter().all(|r| !r.blocking || !r.faces.is_empty())
        {
            format!(
                " <a href=\"/photos/{id}/redacted?purpose={}\">redacted copy</a>",
                q(&d.purpose)
            )
        } else {
            String::new()
        };
        rows.push(format!(
            "<tr id=\"decision-{p}\" data-purpose=\"{p}\" data-allowed=\"{}\"><td>{p}</td><td>{}</td><td>{}{redacted}</td></tr>",
            d.allowed,
            verdict(d.allowed),
            reasons.join("<br>"),
            p = esc(&d.purpose),
        ));
    }
    let _ = write!(
        html,
        "<section class=\"card\"><h2>May it be used on {date}?</h2>{}</section>",
        table(&["Purpose", "Decision", "Why"], &rows)
    );
    // Faces.
    if sees_faces && !asset.faces.is_empty() {
        html.push_str("<section class=\"card\"><h2>Faces</h2><ul class=\"faces\">");
        for face in &asset.faces {
            let (label, kind) = face_label(call, face);
            let no = face.no;
            let _ = write!(
                html,
                "<li id=\"face-{no}\" class=\"{kind}\"><img src=\"/photos/{id}/faces/{no}/crop\" alt=\"face {no}\"><div><strong>{no}: {}</strong>",
                esc(&label)
            );
            if edits && kind != "confirmed" {
                let _ = write!(
                    html,
                    "<form method=\"post\" action=\"/photos/{id}/faces/{no}/name\" class=\"name-face\">{}\
<input type=\"text\" name=\"person\" id=\"name-{no}\" list=\"persons\" placeholder=\"Name\" required>\
<select name=\"kind\" aria-label=\"Kind of person\"><option>staff</option><option>patient</option><option>citizen</option><option>minor</option><option selected>other</option></select>\
<button type=\"submit\" id=\"name-{no}-save\">Name</button></form>",
                    csrf_field(&call.csrf)
                );
                if let Some(Identity::Suggested { person, .. }) = &face.attribution.identity {
                    let _ = write!(
                        html,
                        "<form method=\"post\" action=\"/photos/{id}/faces/{no}/name\" class=\"inline\">{}<input type=\"hidden\" name=\"person\" value=\"{}\"><button type=\"submit\" class=\"ok\">Confirm</button></form>",
                        csrf_field(&call.csrf),
                        esc(person.as_str())
                    );
                    html.push_str(&button_with(
                        call,
                        &format!("/photos/{id}/faces/{no}/reject"),
                        "Not this person",
                        "",
                        &[("person", person.as_str())],
                    ));
                }
            }
            if let Some(p) = face.attribution.confirmed() {
                let _ = write!(
                    html,
                    " <a href=\"/people/{}\">person page</a>",
                    esc(p.as_str())
                );
            }
            html.push_str("</div></li>");
        }
        html.push_str("</ul>");
        if edits {
            html.push_str("<datalist id=\"persons\">");
            for p in call.people().list(false) {
                let _ = write!(html, "<option value=\"{}\">", esc(&p.name));
            }
            html.push_str("</datalist>");
        }
        html.push_str("</section>");
    }
    // Downloads.
    let _ = write!(
        html,
        "<section class=\"card\"><h2>Download</h2><p><a id=\"download-original\" href=\"/photos/{id}/original\">Original</a> (recorded in the audit trail)</p></section>"
    );
    // Metadata and licence.
    let m = &asset.metadata;
    let mut meta = Vec::new();
    let mut row = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            meta.push(format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v)));
        }
    };
    row(
        "Taken",
        crate::api::capture_time_text(m)
            .map(|t| t.replacen('T', " ", 1).trim_end_matches(".000").to_owned()),
    );
    row(
        "Camera",
        Some(
            format!(
                "{} {}",
                m.camera_make.clone().unwrap_or_default(),
                m.camera_model.clone().unwrap_or_default()
            )
            .trim()
            .to_owned(),
        ),
    );
    row("Title", m.title.clone());
    row("Caption", m.caption.clone());
    row("Creator", Some(m.creator.join(", ")));
    row("Copyright", m.copyright.clone());
    row("Keywords", Some(m.keywords.join(", ")));
    row("Format", asset.format.clone());
    row(
        "Ingested",
        Some(
            crate::clock::rfc3339(asset.created_at_ms)
                .get(..19)
                .map_or_else(String::new, |t| format!("{} UTC", t.replacen('T', " ", 1))),
        ),
    );
    let _ = write!(
        html,
        "<section class=\"card\"><h2>Metadata</h2><table class=\"kv\">{}</table></section>",
        meta.join("")
    );
    let (licence, sources) = call
        .console
        .rights
        .licence_of(&asset.id)
        .map_err(Fail::internal)?;
    let _ = write!(
        html,
        "<section class=\"card\"><h2>Licence</h2><p>{}</p>",
        if sources.is_empty() {
            "No licence recorded.".to_owned()
        } else {
            esc(&format!(
                "{} — {}{}",
                licence
                    .licensor
                    .clone()
                    .or(licence.creator.clone())
                    .unwrap_or_default(),
                licence.terms.clone().unwrap_or_default(),
                licence
                    .valid_until
                    .map(|d| format!(", until {d}"))
                    .unwrap_or_default()
            ))
        }
    );
    if edits {
        let _ = write!(
            html,
            "<form method=\"post\" action=\"/photos/{id}/licence\" enctype=\"multipart/form-data\" class=\"stack\">{}\
<label>Licensor <input type=\"text\" name=\"licensor\" id=\"licence-licensor\"></label>\
<label>Terms <input type=\"text\" name=\"terms\" id=\"licence-terms\"></label>\
<label>Valid until <input type=\"date\" name=\"valid_until\"></label>\
<label>Purposes (empty: any) <input type=\"text\" name=\"purposes\" placeholder=\"website print\"></label>\
<label>Document <input type=\"file\" name=\"document\" accept=\".pdf,.jpg,.jpeg,.png,.tif,.tiff\"></label>\
<button type=\"submit\">Record licence</button></form>",
            csrf_field(&call.csrf)
        );
    }
    html.push_str("</section>");
    if authz::holds(grants, Permission::Restrict) {
        let restricted = call
            .console
            .rights
            .restricted(&Subject::Asset(asset.id.clone()));
        let _ = write!(
            html,
            "<section class=\"card\"><h2>Restriction</h2><form method=\"post\" action=\"/photos/{id}/restrict\" class=\"stack\">{}\
<input type=\"hidden\" name=\"restricted\" value=\"{}\"><label>Reason <input type=\"text\" name=\"reason\" required></label>\
<button type=\"submit\" class=\"danger\">{}</button></form></section>",
            csrf_field(&call.csrf),
            !restricted,
            if restricted {
                "Lift the restriction"
            } else {
                "Restrict this photo"
            }
        );
    }
    html.push_str("</div></div>");
    Ok(call.page(name, &html))
}

pub fn api_photo(call: &Call) -> Result<Resp, Fail> {
    let asset = asset_of(call)?;
    let detail = call.ask(Request::AssetShow {
        id: asset.id.to_string(),
    })?;
    let mut detail = detail.into_iter().next().unwrap_or_default();
    if !authz::holds(&call.user.grants, Permission::FaceView) {
        // Viewers get the photo, not who is in it.
        detail["faces"] = serde_json::json!([]);
    }
    detail["decisions"] = serde_json::to_value(call.console.rights.decide_all(
        call.people(),
        &asset,
        call.console.rights.today(),
    ))
    .map_err(Fail::internal)?;
    Ok(Resp::json(StatusCode::OK, &detail))
}

pub fn api_decisions(call: &Call) -> Result<Resp, Fail> {
    let asset = asset_of(call)?;
    let date = date_param(call)?;
    call.audit(Entry::new("asset.decide", format!("asset:{}", asset.id)).with("date", date))?;
    let decisions = call.console.rights.decide_all(call.people(), &asset, date);
    Ok(Resp::json(StatusCode::OK, &decisions))
}

// ---- bytes -------------------------------------------------------------------------

pub fn thumb(call: &Call) -> Result<Resp, Fail> {
    let asset = asset_of(call)?;
    let large = call.req.query("size") == Some("large");
    let thumb = if large {
        asset.thumbnails.iter().max_by_key(|t| t.size)
    } else {
        asset.thumbnails.iter().min_by_key(|t| t.size)
    }
    .ok_or_else(|| Fail::new(StatusCode::NOT_FOUND, "This photo has no preview."))?;
    call.audit(
        Entry::new("asset.thumbnail", format!("asset:{}", asset.id)).with("size", thumb.size),
    )?;
    let bytes = call
        .console
        .store
        .read_blob(&asset, &thumb.blob)
        .map_err(Fail::internal)?;
    Ok(Resp::bytes(&thumb.mime, bytes).with_header(
        consentry_web::warp::http::header::CACHE_CONTROL,
        "private, max-age=300",
    ))
}

pub fn original(call: &Call) -> Result<Resp, Fail> {
    let asset = asset_of(call)?;
    let blob = asset.original.as_ref().ok_or_else(|| {
        Fail::new(
            StatusCode::NOT_FOUND,
            "The original of this file was not stored.",
        )
    })?;
    call.audit(
        Entry::new("asset.download", format!("asset:{}", asset.id)).with("copy", "original"),
    )?;
    let bytes = call
        .console
        .store
        .read_blob(&asset, blob)
        .map_err(Fail::internal)?;
    let name = asset
        .sources
        .first()
        .and_then(|s| s.path.rsplit('/').next())
        .unwrap_or("photo")
        .to_owned();
    Ok(Resp::attachment(
        asset.mime.as_deref().unwrap_or("application/octet-stream"),
        &name,
        bytes,
    ))
}

pub fn redacted(call: &Call) -> Result<Resp, Fail> {
    let asset = asset_of(call)?;
    let purpose = call
        .req
        .query("purpose")
        .map(str::to_owned)
        .or_else(|| call.console.rights.config().purposes.first().cloned())
        .ok_or_else(|| Fail::bad("name a purpose (?purpose=website)"))?;
    let files = call.ask(Request::Rights {
        request: Box::new(RightsRequest::Export {
            assets: vec![asset.id.to_string()],
            purpose: purpose.clone(),
            date: None,
            xmp: false,
            redact: true,
        }),
    })?;
    let file = files
        .iter()
        .find(|f| s(f, "name").ends_with(".jpg") || s(f, "name").ends_with(".jpeg"))
        .or(files.first())
        .ok_or_else(|| Fail::internal("the export produced no file"))?;
    let bytes = crate::pipeline::store::crypto::hex_decode(s(file, "hex"))
        .ok_or_else(|| Fail::internal("the export is not hex"))?;
    let mime = if s(file, "name").ends_with("-redacted.jpg") {
        "image/jpeg"
    } else {
        asset.mime.as_deref().unwrap_or("application/octet-stream")
    };
    Ok(Resp::attachment(mime, s(file, "name"), bytes))
}

pub fn crop(call: &Call) -> Result<Resp, Fail> {
    use opencv::core::{Rect, Vector};
    use opencv::prelude::*;
    let asset = asset_of(call)?;
    let no: u32 = call.param(1).parse().map_err(|_| Fail::not_found())?;
    let face = asset
        .faces
        .iter()
        .find(|f| f.no == no)
        .ok_or_else(Fail::not_found)?;
    let thumb = asset
        .thumbnails
        .iter()
        .max_by_key(|t| t.size)
        .ok_or_else(|| Fail::new(StatusCode::NOT_FOUND, "This photo has no preview."))?;
    call.audit(Entry::new("face.crop", format!("face:{}:{no}", asset.id)))?;
    let bytes = call
        .console
        .store
        .read_blob(&asset, &thumb.blob)
        .map_err(Fail::internal)?;
    let image = opencv::imgcodecs::imdecode(
        &Vector::<u8>::from_slice(&bytes),
        opencv::imgcodecs::IMREAD_COLOR,
    )
    .map_err(Fail::internal)?;
    let scale = thumb.width as f32 / asset.width.unwrap_or(thumb.width).max(1) as f32;
    let b = &face.bbox;
    let margin = 0.25 * b.width.max(b.height);
    let x0 = ((b.x - margin) * scale).max(0.0) as i32;
    let y0 = ((b.y - margin) * scale).max(0.0) as i32;
    let x1 = (((b.x + b.width + margin) * scale) as i32).min(image.cols());
    let y1 = (((b.y + b.height + margin) * scale) as i32).min(image.rows());
    if x1 <= x0 || y1 <= y0 {
        return Err(Fail::new(
            StatusCode::NOT_FOUND,
            "The face lies outside the preview.",
        ));
    }
    let roi = Mat::roi(&image, Rect::new(x0, y0, x1 - x0, y1 - y0)).map_err(Fail::internal)?;
    let mut out = Vector::<u8>::new();
    opencv::imgcodecs::imencode(
        ".jpg",
        &roi,
        &mut out,
        &Vector::from_slice(&[opencv::imgcodecs::IMWRITE_JPEG_QUALITY, 88]),
    )
    .map_err(Fail::internal)?;
    Ok(Resp::bytes("image/jpeg", out.to_vec()).with_header(
        consentry_web::warp::http::header::CACHE_CONTROL,
        "private, max-age=60",
    ))
}

// ---- changes -----------------------------------------------------------------------

/// Names a face: a known person (name or id) is confirmed; a new name makes
/// the person with this face as their first reference.
pub fn name_face(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let person = form.require("person")?.to_owned();
    let face = format!("{}:{}", call.param(0), call.param(1));
    let request = if call.people().resolve(&person).is_ok() {
        PeopleRequest::Confirm {
            face: face.clone(),
            person: person.clone(),
        }
    } else {
        let kind = match form.get("kind").unwrap_or("other") {
            "staff" => crate::domain::PersonKind::Staff,
            "patient" => crate::domain::PersonKind::Patient,
            "citizen" => crate::domain::PersonKind::Citizen,
            "minor" => crate::domain::PersonKind::Minor,
            _ => crate::domain::PersonKind::Other,
        };
        PeopleRequest::Add {
            name: person.clone(),
            kind,
            external_ref: None,
            notes: None,
            photos: vec![],
            faces: vec![face.clone()],
        }
    };
    let answer = call.ask(Request::People { request })?;
    Ok(done(
        call,
        &format!("/photos/{}", call.param(0)),
        serde_json::json!({ "face": face, "person": person, "answer": answer }),
    ))
}

/// "Not this person": names the person rejected, so a stale page cannot
/// reject someone else.
pub fn reject_face(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let person = form.require("person")?.to_owned();
    let face = format!("{}:{}", call.param(0), call.param(1));
    call.ask(Request::People {
        request: PeopleRequest::Reject {
            face: face.clone(),
            person: Some(person),
        },
    })?;
    Ok(done(
        call,
        &format!("/photos/{}", call.param(0)),
        serde_json::json!({ "face": face, "rejected": true }),
    ))
}

pub fn set_licence(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let asset = AssetId::parse(call.param(0)).ok_or_else(Fail::not_found)?;
    let date = |k: &str| form.date(k).map_err(Fail::bad);
    let purposes: Vec<String> = form
        .get("purposes")
        .map(|p| {
            p.split([' ', ','])
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if form.get("licensor").is_none() && form.get("terms").is_none() {
        return Err(Fail::bad(
            "Give at least the licensor or the terms of the licence.",
        ));
    }
    let terms = LicenceTerms {
        licensor: form.get("licensor").map(str::to_owned),
        terms: form.get("terms").map(str::to_owned),
        purposes: (!purposes.is_empty()).then(|| purposes.into_iter().collect()),
        valid_from: date("valid_from")?,
        valid_until: date("valid_until")?,
        ..LicenceTerms::default()
    };
    let document = form
        .file("document")
        .map(|f| crate::people::commands::PhotoUpload {
            name: f.name.clone(),
            hex: crate::pipeline::store::crypto::hex_encode(&f.bytes),
        });
    call.ask(Request::Rights {
        request: Box::new(RightsRequest::LicenceSet {
            scope: LicenceScope::Asset { asset },
            terms: Box::new(terms),
            document,
        }),
    })?;
    Ok(done(
        call,
        &format!("/photos/{}", call.param(0)),
        serde_json::json!({ "ok": true }),
    ))
}

pub fn restrict(call: &Call) -> Result<Resp, Fail> {
    super::people::restrict_subject(call, false)
}

/// Whether the user may see `asset` in a list (the router's check).
pub fn may_see_photo(call: &Call, asset: &Asset) -> bool {
    may_see(call, asset, Permission::PhotoView).is_some()
}
