//! People: the review queue (unknown-face clusters to name or dismiss,
//! suggestions to confirm or reject), the person list and page (photos,
//! consents and their documents, opt-out, restriction), and the consent form
//! with document upload. Editors see persons who appear in their collections.

use std::fmt::Write;

use consentry_web::warp::http::StatusCode;

use super::{Fail, done};
use crate::consent::NewConsent;
use crate::consent::commands::RightsRequest;
use crate::consent::model::{Signer, Subject};
use crate::console::Call;
use crate::console::authz::{self, Permission, Scope};
use crate::console::http::Resp;
use crate::console::render::{button_with, csrf_field, esc, s, table};
use crate::console::routes::person_scope;
use crate::control::Request;
use crate::domain::{AssetId, FaceRef, Identity, PersonKind, Recognition};
use crate::people::ClusterView;
use crate::people::commands::{PeopleRequest, PhotoUpload};
use crate::pipeline::store::crypto::{hex_decode, hex_encode};

/// The collections of a cluster's faces.
pub fn cluster_collections(call: &Call, cluster: &ClusterView) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for face in &cluster.faces {
        let Some(face) = FaceRef::parse(face) else {
            continue;
        };
        if let Ok(Some(asset)) = call.console.store.asset(&face.asset)
            && !out.contains(&asset.collection)
        {
            out.push(asset.collection);
        }
    }
    out
}

fn may_edit_in(call: &Call, collection: &str) -> bool {
    authz::check(
        &call.user.grants,
        Permission::FaceEdit,
        Scope::Photo {
            collection,
            restricted: false,
            usable: false,
        },
    )
    .is_ok()
}

fn kind_select(id: &str) -> String {
    format!(
        "<select name=\"kind\" id=\"{id}\"><option>staff</option><option>patient</option><option>citizen</option><option>minor</option><option selected>other</option></select>"
    )
}

fn parse_kind(text: Option<&str>) -> PersonKind {
    match text.unwrap_or("other") {
        "staff" => PersonKind::Staff,
        "patient" => PersonKind::Patient,
        "citizen" => PersonKind::Citizen,
        "minor" => PersonKind::Minor,
        _ => PersonKind::Other,
    }
}

fn crop(face: &str) -> String {
    match face.split_once(':') {
        Some((asset, no)) => format!(
            "<a href=\"/photos/{a}\"><img class=\"crop\" src=\"/photos/{a}/faces/{n}/crop\" alt=\"face {n}\"></a>",
            a = esc(asset),
            n = esc(no)
        ),
        None => String::new(),
    }
}

pub fn review(call: &Call) -> Result<Resp, Fail> {
    let clusters = call.ask(Request::People {
        request: PeopleRequest::ClustersList,
    })?;
    let mut html = String::from("<section class=\"card\"><h2>Unknown faces that look alike</h2>");
    let mut shown = 0;
    for c in clusters {
        let view: ClusterView = match serde_json::from_value(c) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if !cluster_collections(call, &view)
            .iter()
            .all(|col| may_edit_in(call, col))
        {
            continue;
        }
        shown += 1;
        let _ = write!(
            html,
            "<div class=\"cluster\" id=\"cluster-{id}\"><p><strong>{}</strong> face(s)</p><div class=\"crops\">",
            view.size,
            id = esc(&view.id)
        );
        for f in view.faces.iter().take(8) {
            html.push_str(&crop(f));
        }
        let _ = write!(
            html,
            "</div><form method=\"post\" action=\"/review/clusters/{id}/name\" class=\"inline\">{}<input type=\"text\" name=\"person\" placeholder=\"Name\" required>{}<button type=\"submit\">Name</button></form>{}</div>",
            csrf_field(&call.csrf),
            kind_select(&format!("kind-{}", view.id)),
            button_with(
                call,
                &format!("/review/clusters/{}/dismiss", view.id),
                "Dismiss",
                "",
                &[("faces", &view.size.to_string())]
            ),
            id = esc(&view.id),
        );
    }
    if shown == 0 {
        html.push_str("<p class=\"empty\">No clusters to review.</p>");
    }
    html.push_str("</section><section class=\"card\"><h2>Suggestions to confirm</h2>");
    let mut rows = Vec::new();
    for asset in call.console.store.assets() {
        let asset = asset.map_err(Fail::internal)?;
        if !may_edit_in(call, &asset.collection) {
            continue;
        }
        for face in &asset.faces {
            if let Some(Identity::Suggested { person, distance }) = &face.attribution.identity {
                let name = call.people().name_of(person.as_str()).unwrap_or_default();
                let face_ref = format!("{}:{}", asset.id, face.no);
                rows.push(format!(
                    "<tr><td>{}</td><td>{}</td><td>{distance:.2}</td><td><form method=\"post\" action=\"/photos/{}/faces/{}/name\" class=\"inline\">{}<input type=\"hidden\" name=\"person\" value=\"{}\"><button type=\"submit\" class=\"ok\">Confirm</button></form>{}</td></tr>",
                    crop(&face_ref),
                    esc(&name),
                    asset.id,
                    face.no,
                    csrf_field(&call.csrf),
                    esc(person.as_str()),
                    button_with(call, &format!("/photos/{}/faces/{}/reject", asset.id, face.no), "Not this person", "", &[("person", person.as_str())]),
                ));
            }
        }
    }
    html.push_str(&table(&["Face", "Suggested", "Distance", ""], &rows));
    html.push_str("</section>");
    Ok(call.page("Review", &html))
}

pub fn name_cluster(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    call.ask(Request::People {
        request: PeopleRequest::ClustersName {
            cluster: call.param(0).to_owned(),
            person: form.require("person")?.to_owned(),
            kind: parse_kind(form.get("kind")),
        },
    })?;
    Ok(done(
        call,
        "/review",
        serde_json::json!({"named": call.param(0)}),
    ))
}

/// Dismisses a cluster, if it still has the size the page showed (it may
/// have changed since).
pub fn dismiss_cluster(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let shown: usize = form
        .require("faces")?
        .parse()
        .map_err(|_| Fail::bad("`faces` must be a number"))?;
    let now = call
        .people()
        .clusters()
        .into_iter()
        .find(|c| c.id == call.param(0))
        .map(|c| c.size);
    if now != Some(shown) {
        return Err(Fail::bad(
            "This cluster changed since the page was shown; review it again.",
        ));
    }
    call.ask(Request::People {
        request: PeopleRequest::ClustersDismiss {
            cluster: call.param(0).to_owned(),
        },
    })?;
    Ok(done(
        call,
        "/review",
        serde_json::json!({"dismissed": call.param(0)}),
    ))
}

/// Whether the user may see `person` (the same check as the router's).
fn may_see_person(call: &Call, person: &str) -> bool {
    let Ok((id, collections)) = person_scope(call, person) else {
        return false;
    };
    let restricted = call.console.rights.restricted(&Subject::Person(id));
    authz::check(
        &call.user.grants,
        Permission::PersonView,
        Scope::Person {
            collections: &collections,
            restricted,
        },
    )
    .is_ok()
}

pub fn list(call: &Call) -> Result<Resp, Fail> {
    let people = call.ask(Request::People {
        request: PeopleRequest::List { all: false },
    })?;
    let rows: Vec<String> = people
        .iter()
        .filter(|p| may_see_person(call, s(p, "id")))
        .map(|p| {
            format!(
                "<tr><td><a href=\"/people/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(s(p, "id")),
                esc(s(p, "name")),
                esc(s(p, "kind")),
                p["assets"],
                esc(s(p, "recognition"))
            )
        })
        .collect();
    Ok(call.page(
        "People",
        &table(&["Name", "Kind", "Photos", "Recognition"], &rows),
    ))
}

struct PersonData {
    person: serde_json::Value,
    photos: Vec<AssetId>,
    consents: Vec<serde_json::Value>,
}

fn person_data(call: &Call) -> Result<PersonData, Fail> {
    let shown = call.ask(Request::People {
        request: PeopleRequest::Show {
            person: call.param(0).to_owned(),
        },
    })?;
    let person = shown
        .into_iter()
        .next()
        .map(|mut v| v["person"].take())
        .filter(|p| p.is_object())
        .ok_or_else(Fail::not_found)?;
    let (_, assets) = call
        .people()
        .assets_of(call.param(0))
        .map_err(|_| Fail::not_found())?;
    let mut photos = Vec::new();
    for (id, _) in assets {
        if let Some(asset) = call.console.store.asset(&id).map_err(Fail::internal)?
            && authz::sees_collection(&call.user.grants, Permission::PhotoView, &asset.collection)
        {
            photos.push(id);
        }
    }
    let consents = call.ask(Request::Rights {
        request: Box::new(RightsRequest::ConsentList {
            person: Some(call.param(0).to_owned()),
            date: None,
        }),
    })?;
    Ok(PersonData {
        person,
        photos,
        consents,
    })
}

pub fn api_person(call: &Call) -> Result<Resp, Fail> {
    let d = person_data(call)?;
    Ok(Resp::json(
        StatusCode::OK,
        &serde_json::json!({
            "person": d.person,
            "photos": d.photos.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "consents": d.consents,
        }),
    ))
}

pub fn page(call: &Call) -> Result<Resp, Fail> {
    let d = person_data(call)?;
    let p = &d.person;
    let id = s(p, "id").to_owned();
    let grants = &call.user.grants;
    let mut html = String::new();
    if call.overrides {
        html.push_str("<p class=\"error\" role=\"status\">This person is restricted. You see them as privacy officer; the access is recorded.</p>");
    }
    let _ = write!(
        html,
        "<section class=\"card\"><table class=\"kv\"><tr><th>Kind</th><td>{}</td></tr><tr><th>Recognition</th><td id=\"recognition\">{}</td></tr><tr><th>Confirmed faces</th><td>{}</td></tr><tr><th>Restricted</th><td>{}</td></tr></table></section>",
        esc(s(p, "kind")),
        esc(s(p, "recognition")),
        p["confirmed_faces"],
        if call.console.rights.restricted(&Subject::Person(
            crate::domain::PersonId::parse(&id).ok_or_else(Fail::not_found)?
        )) {
            "yes"
        } else {
            "no"
        },
    );
    html.push_str(
        "<section class=\"card\"><h2>Photos</h2><ul class=\"grid small\" id=\"person-photos\">",
    );
    for a in &d.photos {
        let _ = write!(
            html,
            "<li><a href=\"/photos/{a}\"><img src=\"/photos/{a}/thumb\" alt=\"\"></a></li>"
        );
    }
    html.push_str("</ul></section>");
    // Consents.
    let rows: Vec<String> = d
        .consents
        .iter()
        .map(|c| {
            let cid = s(c, "id");
            let purposes: Vec<&str> = c["purposes"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
            let doc = if c["document"].is_object() {
                format!("<a href=\"/consents/{}/document\">document</a>", esc(cid))
            } else {
                "—".into()
            };
            let withdraw = if c["withdrawn"].is_null() && authz::holds(grants, Permission::ConsentEdit) {
                format!(
                    "<form method=\"post\" action=\"/consents/{}/withdraw\" class=\"inline withdraw\">{}<input type=\"text\" name=\"reason\" placeholder=\"Reason\" required id=\"withdraw-reason-{cid}\"><button type=\"submit\" class=\"danger\" id=\"withdraw-{cid}\">Withdraw</button></form>",
                    esc(cid), csrf_field(&call.csrf), cid = esc(cid)
                )
            } else {
                String::new()
            };
            format!(
                "<tr class=\"consent\" data-consent=\"{}\"><td>{}</td><td>{}</td><td><span class=\"badge {}\">{}</span></td><td>{}</td><td>{}</td><td>{doc}</td><td>{withdraw}</td></tr>",
                esc(cid),
                esc(&purposes.join(", ")),
                esc(s(c, "signed_on")),
                if s(c, "status") == "valid" || s(c, "status") == "expiring-soon" { "ok" } else { "no" },
                esc(s(c, "status")),
                esc(c["valid_until"].as_str().unwrap_or("until withdrawn")),
                if c["recognition"].as_bool() == Some(true) { "recognition" } else { "" },
            )
        })
        .collect();
    let _ = write!(
        html,
        "<section class=\"card\" id=\"consents\"><h2>Consents</h2>{}",
        table(
            &[
                "Purposes",
                "Signed",
                "Status",
                "Valid until",
                "",
                "Signed form",
                ""
            ],
            &rows
        )
    );
    if authz::holds(grants, Permission::ConsentEdit) {
        let mut boxes = String::new();
        for purpose in &call.console.rights.config().purposes {
            let _ = write!(
                boxes,
                "<label class=\"check\"><input type=\"checkbox\" name=\"purposes\" value=\"{p}\" id=\"purpose-{p}\"> {p}</label>",
                p = esc(purpose)
            );
        }
        let _ = write!(
            html,
            "<h3>Record a consent</h3><form method=\"post\" action=\"/people/{}/consents\" enctype=\"multipart/form-data\" class=\"stack\" id=\"consent-form\">{}\
<fieldset><legend>Purposes</legend>{boxes}</fieldset>\
<label>Signed on <input type=\"date\" name=\"signed_on\" id=\"consent-signed\" value=\"{today}\" required></label>\
<label>Valid until <input type=\"date\" name=\"valid_until\" id=\"consent-until\"></label>\
<label>Signed by a guardian (name) <input type=\"text\" name=\"guardian\"></label>\
<label class=\"check\"><input type=\"checkbox\" name=\"recognition\" value=\"1\"> also consents to face recognition</label>\
<label>Reference <input type=\"text\" name=\"reference\"></label>\
<label>Signed form (PDF, JPEG, PNG, TIFF) <input type=\"file\" name=\"document\" id=\"consent-document\" accept=\".pdf,.jpg,.jpeg,.png,.tif,.tiff\"></label>\
<button type=\"submit\" id=\"consent-save\">Record consent</button></form>",
            esc(&id),
            csrf_field(&call.csrf),
            today = call.console.rights.today(),
        );
    }
    html.push_str("</section>");
    if authz::holds(grants, Permission::FaceEdit) {
        let _ = write!(
            html,
            "<section class=\"card\"><h2>Duplicate?</h2><form method=\"post\" action=\"/people/{}/merge\" class=\"inline\">{}\
<label>Merge <input type=\"text\" name=\"from\" id=\"merge-from\" placeholder=\"name of the duplicate\" required></label> into this person \
<button type=\"submit\">Merge</button></form><p class=\"muted\">The other person's confirmed faces move here (undo with <code>consentry people undo</code>).</p></section>",
            esc(&id),
            csrf_field(&call.csrf)
        );
    }
    if authz::holds(grants, Permission::Restrict) {
        let restricted = call.console.rights.restricted(&Subject::Person(
            crate::domain::PersonId::parse(&id).ok_or_else(Fail::not_found)?,
        ));
        let _ = write!(
            html,
            "<section class=\"card\"><h2>Objection and restriction</h2>{}\
<form method=\"post\" action=\"/people/{}/restrict\" class=\"stack\">{}<input type=\"hidden\" name=\"restricted\" value=\"{}\"><label>Reason <input type=\"text\" name=\"reason\" required></label><button type=\"submit\" class=\"danger\">{}</button></form></section>",
            if s(p, "recognition") == "opted-out" {
                "<p>Opted out of recognition.</p>".to_owned()
            } else {
                format!(
                    "<form method=\"post\" action=\"/people/{}/optout\" class=\"inline\">{}<label class=\"check\"><input type=\"checkbox\" name=\"confirm\" value=\"1\" required> the person objected to face recognition</label><button type=\"submit\" class=\"danger\">Opt out of face recognition</button></form>",
                    esc(&id),
                    csrf_field(&call.csrf)
                )
            },
            esc(&id),
            csrf_field(&call.csrf),
            !restricted,
            if restricted {
                "Lift the restriction"
            } else {
                "Restrict this person"
            },
        );
    }
    let name = s(p, "name").to_owned();
    Ok(call.page(&name, &html))
}

pub fn add_consent(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let date = |k: &str| form.date(k).map_err(Fail::bad);
    let purposes = form.all("purposes");
    if purposes.is_empty() {
        return Err(Fail::bad(
            "Tick at least one purpose the person consented to.",
        ));
    }
    let signer = match form.get("guardian") {
        Some(name) => Signer::Guardian {
            name: name.to_owned(),
        },
        None => Signer::Subject,
    };
    let consent = NewConsent {
        person: call.param(0).to_owned(),
        signer,
        signed_on: date("signed_on")?.unwrap_or_else(|| call.console.rights.today()),
        purposes,
        recognition: form
            .get("recognition")
            .is_some_and(|v| v == "1" || v == "true" || v == "on"),
        valid_from: date("valid_from")?,
        valid_until: date("valid_until")?,
        reference: form.get("reference").map(str::to_owned),
        notes: form.get("notes").map(str::to_owned),
    };
    let document = form.file("document").map(|f| PhotoUpload {
        name: f.name.clone(),
        hex: hex_encode(&f.bytes),
    });
    let answer = call.ask(Request::Rights {
        request: Box::new(RightsRequest::ConsentAdd {
            consent: Box::new(consent),
            document,
        }),
    })?;
    Ok(done(
        call,
        &format!("/people/{}", call.param(0)),
        answer.into_iter().next().unwrap_or_default(),
    ))
}

/// Merges the person named in `from` into the route's person; both must be
/// within the user's collections.
pub fn merge(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let from = form.require("from")?.to_owned();
    if !may_see_person(call, &from) {
        return Err(Fail::bad(format!(
            "No person `{from}` in your collections."
        )));
    }
    call.ask(Request::People {
        request: PeopleRequest::Merge {
            into: call.param(0).to_owned(),
            from: from.clone(),
        },
    })?;
    Ok(done(
        call,
        &format!("/people/{}", call.param(0)),
        serde_json::json!({"merged": from, "into": call.param(0)}),
    ))
}

pub fn withdraw(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let consent = call
        .console
        .rights
        .consent(call.param(0))
        .map_err(|_| Fail::not_found())?;
    call.ask(Request::Rights {
        request: Box::new(RightsRequest::ConsentWithdraw {
            id: call.param(0).to_owned(),
            reason: form.require("reason")?.to_owned(),
            at: None,
        }),
    })?;
    Ok(done(
        call,
        &format!("/people/{}", consent.person),
        serde_json::json!({"withdrawn": call.param(0)}),
    ))
}

pub fn document(call: &Call) -> Result<Resp, Fail> {
    let files = call.ask(Request::Rights {
        request: Box::new(RightsRequest::ConsentDocument {
            id: call.param(0).to_owned(),
        }),
    })?;
    let file = files.first().ok_or_else(Fail::not_found)?;
    let bytes =
        hex_decode(s(file, "hex")).ok_or_else(|| Fail::internal("the document is not hex"))?;
    let mime = if bytes.starts_with(b"%PDF-") {
        "application/pdf"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/tiff"
    };
    Ok(Resp::attachment(mime, s(file, "name"), bytes))
}

pub fn opt_out(call: &Call) -> Result<Resp, Fail> {
    if call.req.form()?.get("confirm").is_none() {
        return Err(Fail::bad(
            "Tick that the person objected to face recognition.",
        ));
    }
    call.ask(Request::People {
        request: PeopleRequest::Recognition {
            person: call.param(0).to_owned(),
            recognition: Recognition::OptedOut,
        },
    })?;
    Ok(done(
        call,
        &format!("/people/{}", call.param(0)),
        serde_json::json!({"recognition": "opted-out"}),
    ))
}

pub fn restrict(call: &Call) -> Result<Resp, Fail> {
    restrict_subject(call, true)
}

/// Restricts (or lifts the restriction of) the route's person or photo.
pub fn restrict_subject(call: &Call, person: bool) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let restricted = form.get("restricted") != Some("false");
    call.ask(Request::Rights {
        request: Box::new(RightsRequest::Restrict {
            subject: call.param(0).to_owned(),
            person,
            restricted,
            reason: form.require("reason")?.to_owned(),
        }),
    })?;
    let back = format!(
        "/{}/{}",
        if person { "people" } else { "photos" },
        call.param(0)
    );
    Ok(done(
        call,
        &back,
        serde_json::json!({"restricted": restricted}),
    ))
}

/// Photos of a person within the caller's collections.
pub fn api_search(call: &Call) -> Result<Resp, Fail> {
    let person = call
        .req
        .query("person")
        .ok_or_else(|| Fail::bad("name a person (?person=)"))?;
    if !may_see_person(call, person) {
        return Err(Fail::not_found());
    }
    let found = call.ask(Request::People {
        request: PeopleRequest::SearchPerson {
            person: person.to_owned(),
        },
    })?;
    let mut visible = Vec::new();
    for hit in found {
        let Some(asset) = AssetId::parse(s(&hit, "asset")) else {
            continue;
        };
        if let Ok(Some(a)) = call.console.store.asset(&asset)
            && super::photos::may_see_photo(call, &a)
        {
            visible.push(hit);
        }
    }
    Ok(Resp::json(StatusCode::OK, &visible))
}
