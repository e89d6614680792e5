//! The privacy officer's data-subject requests: the list with deadlines, one
//! case with its found faces and every action, and the actions themselves
//! (find, access package, erasure, close). Each action is a `DsrRequest`
//! through `Call::ask`, so the console does exactly what `consentry dsr …`
//! does and is audited the same way.

use std::fmt::Write;

use consentry_web::warp::http::StatusCode;
use jiff::civil::Date;
use serde_json::Value;

use super::audit::{ids_html, utc, when};
use super::{Fail, done};
use crate::console::Call;
use crate::console::http::Resp;
use crate::console::render::{csrf_field, esc, q, s, table};
use crate::control::Request;
use crate::domain::AssetId;
use crate::dsr::case::Kind;
use crate::dsr::commands::DsrRequest;
use crate::dsr::erase::Mode;
use crate::people::commands::PhotoUpload;
use crate::pipeline::store::crypto::{hex_decode, hex_encode};

fn ask(call: &Call, request: DsrRequest) -> Result<Vec<Value>, Fail> {
    call.ask(Request::Dsr {
        request: Box::new(request),
    })
    .map_err(|message| {
        if message.starts_with("no DSR case") {
            Fail::new(StatusCode::NOT_FOUND, message)
        } else {
            Fail::from(message)
        }
    })
}

fn case_href(id: &str) -> String {
    format!("/dsr/{}", q(id))
}

fn parse_kind(text: &str) -> Result<Kind, Fail> {
    match text {
        "access" => Ok(Kind::Access),
        "erasure" => Ok(Kind::Erasure),
        "restriction" => Ok(Kind::Restriction),
        "rectification" => Ok(Kind::Rectification),
        other => Err(Fail::bad(format!(
            "`{other}` is not a kind of request: access, erasure, restriction or rectification"
        ))),
    }
}

fn parse_mode(text: Option<&str>) -> Result<Mode, Fail> {
    match text.unwrap_or("auto") {
        "auto" => Ok(Mode::Auto),
        "whole" => Ok(Mode::Whole),
        "redact" => Ok(Mode::Redact),
        other => Err(Fail::bad(format!(
            "`{other}` is not an erasure mode: auto, whole or redact"
        ))),
    }
}

/// A checkbox or flag: ticked unless absent or a word for "no".
fn ticked(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        )
    })
}

fn days(n: i64) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

/// The deadline as a sentence: "due 2026-12-23, 30 days left", "overdue by 3
/// days", "closed".
fn deadline(case: &Value) -> (String, &'static str) {
    let due = s(case, "due");
    let left = case["days_left"].as_i64().unwrap_or(0);
    if s(case, "status") == "closed" {
        let closed = case["closed_at_ms"]
            .as_u64()
            .map(|ms| format!(" on {}", when(ms)))
            .unwrap_or_default();
        return (format!("closed{closed} (was due {due})"), "muted");
    }
    if case["overdue"].as_bool() == Some(true) {
        return (format!("due {due}, overdue by {}", days(-left)), "badge no");
    }
    match left {
        0 => (format!("due {due}, today"), "badge warn"),
        1..=7 => (format!("due {due}, {} left", days(left)), "badge warn"),
        _ => (format!("due {due}, {} left", days(left)), "badge ok"),
    }
}

fn person_cell(case: &Value) -> String {
    let id = s(case, "person");
    let name = case["person_name"].as_str().unwrap_or(id);
    format!("<a href=\"/people/{}\">{}</a>", esc(&q(id)), esc(name))
}

fn cases(call: &Call) -> Result<Vec<Value>, Fail> {
    let all = ticked(call.req.query("all"));
    let within_days = match call.req.query("within") {
        Some(text) => Some(
            text.parse::<i32>()
                .map_err(|_| Fail::bad(format!("within={text}: give a number of days")))?,
        ),
        None => None,
    };
    ask(
        call,
        DsrRequest::List {
            within_days: if all { None } else { within_days },
            all,
        },
    )
}

/// GET /dsr: the cases (open ones; `?all=1` closed ones too) and the form
/// that opens a new one.
pub fn list(call: &Call) -> Result<Resp, Fail> {
    let all = ticked(call.req.query("all"));
    let cases = cases(call)?;
    let rows: Vec<String> = cases
        .iter()
        .map(|c| {
            let id = s(c, "id");
            let open = s(c, "status") == "open";
            let overdue = c["overdue"].as_bool() == Some(true);
            let left = if !open {
                "—".to_owned()
            } else if overdue {
                format!(
                    "<span class=\"badge no\">overdue by {}</span>",
                    esc(&days(-c["days_left"].as_i64().unwrap_or(0)))
                )
            } else {
                esc(&c["days_left"].as_i64().unwrap_or(0).to_string())
            };
            format!(
                "<tr{}><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if overdue { " class=\"overdue\"" } else { "" },
                esc(&case_href(id)),
                esc(id),
                person_cell(c),
                esc(s(c, "kind")),
                esc(s(c, "received")),
                esc(s(c, "due")),
                left,
                esc(s(c, "status")),
            )
        })
        .collect();
    let overdue = cases
        .iter()
        .filter(|c| c["overdue"].as_bool() == Some(true))
        .count();
    let mut body = String::new();
    if overdue > 0 {
        let _ = write!(
            body,
            "<p class=\"error\" role=\"alert\">{} overdue: answer {} now, or extend the deadline with <code>consentry dsr extend</code>.</p>",
            if overdue == 1 {
                "One request is".to_owned()
            } else {
                format!("{overdue} requests are")
            },
            if overdue == 1 { "it" } else { "them" }
        );
    }
    let _ = write!(
        body,
        "<section class=\"card\"><h2>{}</h2><p class=\"filters\">{}</p>{}</section>",
        if all { "All requests" } else { "Open requests" },
        if all {
            "<a href=\"/dsr\">Open requests only</a>"
        } else {
            "<a href=\"/dsr?all=1\">Show closed requests too</a>"
        },
        table(
            &[
                "Case",
                "Person",
                "Kind",
                "Received",
                "Due",
                "Days left",
                "Status"
            ],
            &rows
        )
    );
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Open a request</h2>\
<form method=\"post\" action=\"/dsr\" id=\"dsr-open\">{csrf}\
<p><label for=\"person\">Person (name or id)</label> <input type=\"text\" id=\"person\" name=\"person\" required></p>\
<p><label for=\"kind\">Kind</label> <select id=\"kind\" name=\"kind\">\
<option value=\"access\">access (Art. 15/20)</option>\
<option value=\"erasure\">erasure (Art. 17)</option>\
<option value=\"restriction\">restriction or objection (Art. 18/21)</option>\
<option value=\"rectification\">rectification (Art. 16)</option></select></p>\
<p><label for=\"received\">Received on</label> <input type=\"date\" id=\"received\" name=\"received\"> \
<span class=\"muted\">empty: today; due one month later</span></p>\
<p><label for=\"notes\">Notes</label><br><textarea id=\"notes\" name=\"notes\" rows=\"3\" cols=\"60\"></textarea></p>\
<p><button type=\"submit\" id=\"dsr-open-submit\">Open the request</button></p></form></section>",
        csrf = csrf_field(&call.csrf)
    );
    Ok(call.page("Data-subject requests", &body))
}

/// POST /dsr: opens a case and goes to it.
pub fn open(call: &Call) -> Result<Resp, Fail> {
    let form = call.req.form()?;
    let person = form.require("person")?.to_owned();
    let kind = parse_kind(form.require("kind")?)?;
    let received = match form.get("received") {
        Some(text) => Some(
            text.parse::<Date>()
                .map_err(|_| Fail::bad(format!("received `{text}`: give a day as YYYY-MM-DD")))?,
        ),
        None => None,
    };
    let notes = form.get("notes").map(str::to_owned);
    let lines = ask(
        call,
        DsrRequest::Open {
            person,
            kind,
            received,
            notes,
        },
    )?;
    let case = lines.into_iter().next().unwrap_or(Value::Null);
    let to = case_href(s(&case, "id"));
    Ok(done(call, &to, case))
}

fn one_case(call: &Call) -> Result<Value, Fail> {
    ask(
        call,
        DsrRequest::Show {
            id: call.param(0).to_owned(),
        },
    )?
    .into_iter()
    .next()
    .ok_or_else(Fail::not_found)
}

fn details_text(details: &Value) -> String {
    crate::console::render::details_text(details, ", ")
}

/// GET /dsr/{case}: the deadline, the case's facts, found faces, actions and
/// the forms that act on it.
pub fn page(call: &Call) -> Result<Resp, Fail> {
    let case = one_case(call)?;
    let id = s(&case, "id").to_owned();
    let href = case_href(&id);
    let open = s(&case, "status") == "open";
    let (deadline, class) = deadline(&case);
    let mut body = format!(
        "<p class=\"deadline\"><span class=\"{class}\" id=\"deadline\">{}</span></p>",
        esc(&deadline)
    );

    let mut facts = String::from("<dl>");
    let mut fact = |k: &str, v: String| {
        let _ = write!(facts, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    };
    fact("Person", person_cell(&case));
    fact("Kind", esc(s(&case, "kind")));
    fact("Received", esc(s(&case, "received")));
    fact("Due", esc(s(&case, "due")));
    fact("Status", esc(s(&case, "status")));
    fact(
        "Opened",
        format!(
            "{} by {}",
            esc(&when(case["opened_at_ms"].as_u64().unwrap_or(0))),
            esc(s(&case, "opened_by"))
        ),
    );
    if let Some(notes) = case["notes"].as_str() {
        fact("Notes", esc(notes));
    }
    for e in case["extensions"].as_array().into_iter().flatten() {
        fact(
            "Extended",
            format!(
                "{} month(s) by {}: {}",
                esc(&e["months"].to_string()),
                esc(s(e, "by")),
                esc(s(e, "reason"))
            ),
        );
    }
    if let Some(result) = case["result"].as_str() {
        fact("Result", esc(result));
    }
    facts.push_str("</dl>");
    let _ = write!(
        body,
        "<section class=\"card\"><h2>The request</h2>{facts}</section>"
    );

    // Found faces, and the photos they are in (for the erasure form). A
    // photo erased since the search is shown as such, without its crop.
    let found: Vec<&Value> = case["found"].as_array().into_iter().flatten().collect();
    let mut assets: Vec<(&str, bool, Vec<&str>)> = Vec::new();
    for f in &found {
        let (asset, how) = (s(f, "asset"), s(f, "how"));
        match assets.iter_mut().find(|(a, _, _)| *a == asset) {
            Some((_, _, hows)) => {
                if !hows.contains(&how) {
                    hows.push(how);
                }
            }
            None => {
                let stored = match AssetId::parse(asset) {
                    Some(id) => call
                        .console
                        .store
                        .asset(&id)
                        .map_err(Fail::internal)?
                        .is_some(),
                    None => false,
                };
                assets.push((asset, stored, vec![how]));
            }
        }
    }
    let rows: Vec<String> = found
        .iter()
        .map(|f| {
            let asset = s(f, "asset");
            let face = s(f, "face");
            let no = face.rsplit_once(':').map_or("", |(_, no)| no);
            let how = s(f, "how");
            let stored = assets.iter().any(|(a, stored, _)| *a == asset && *stored);
            let photo = esc(&format!("/photos/{}", q(asset)));
            let (crop, face) = if stored {
                (
                    format!(
                        "<a href=\"{photo}\"><img src=\"{}\" alt=\"face {}\" width=\"64\" height=\"64\" loading=\"lazy\"></a>",
                        esc(&format!("/photos/{}/faces/{}/crop", q(asset), q(no))),
                        esc(face)
                    ),
                    format!("<a href=\"{photo}\">{}</a>", ids_html(face)),
                )
            } else {
                (
                    "<span class=\"badge no\">gone</span>".to_owned(),
                    format!("{} <span class=\"muted\">(erased)</span>", ids_html(face)),
                )
            };
            format!(
                "<tr><td>{crop}</td><td>{face}</td><td>{how}</td><td>{distance}</td></tr>",
                how = if how == "confirmed" {
                    "<span class=\"badge ok\">confirmed</span>".to_owned()
                } else {
                    format!(
                        "<span class=\"badge warn\">{}</span> <span class=\"muted\">to review</span>",
                        esc(how)
                    )
                },
                distance = f["distance"]
                    .as_f64()
                    .map(|d| format!("{d:.3}"))
                    .unwrap_or_default(),
            )
        })
        .collect();
    let _ = write!(
        body,
        "<section class=\"card\" id=\"found\"><h2>Found faces ({})</h2>",
        found.len()
    );
    if found.is_empty() {
        body.push_str("<p class=\"empty\">No search yet, or nothing found.</p>");
    } else {
        body.push_str(&table(&["", "Face", "How", "Distance"], &rows));
    }
    if open {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{action}\" enctype=\"multipart/form-data\" id=\"dsr-find\">{csrf}\
<p>Confirmed faces and suggestions are always searched. A reference photo the person gave finds similar stored faces too.</p>\
<p><label for=\"photo\">Reference photo (optional)</label> <input type=\"file\" id=\"photo\" name=\"photo\" accept=\"image/*\"></p>\
<p><label><input type=\"checkbox\" id=\"scan\" name=\"scan\" value=\"true\"> Also scan collections without recognition (slow; needs the reference photo; nothing is stored)</label></p>\
<p><button type=\"submit\" id=\"dsr-find-submit\">Find</button></p></form>",
            action = esc(&format!("{href}/find")),
            csrf = csrf_field(&call.csrf)
        );
    }
    body.push_str("</section>");

    if open {
        let _ = write!(
            body,
            "<section class=\"card\"><h2>Access package</h2>\
<p>The person's photos, faces, consents, decisions and recipients as one zip (Art. 15/20). Downloading it is recorded on the case and in the audit log.</p>\
<p><a href=\"{}\" id=\"dsr-package\" download>Download the access package</a></p></section>",
            esc(&format!("{href}/package"))
        );

        let mut choices = String::new();
        for (i, (asset, _, hows)) in assets.iter().filter(|(_, stored, _)| *stored).enumerate() {
            let _ = write!(
                choices,
                "<li><label><input type=\"checkbox\" id=\"asset-{i}\" name=\"asset\" value=\"{}\"> {} <span class=\"muted\">({})</span></label></li>",
                esc(asset),
                ids_html(asset),
                esc(&hows.join(", "))
            );
        }
        let choices = if choices.is_empty() {
            String::new()
        } else {
            format!(
                "<fieldset><legend>Only these photos (leave all unticked for every confirmed photo and the person's templates)</legend><ul>{choices}</ul></fieldset>"
            )
        };
        let _ = write!(
            body,
            "<section class=\"card danger\"><h2>Erase</h2>\
<form method=\"post\" action=\"{action}\" id=\"dsr-erase\">{csrf}\
<p>Erases the person's photos (Art. 17). This cannot be undone: the photos' keys are destroyed.</p>{choices}\
<p><label for=\"mode\">Mode</label> <select id=\"mode\" name=\"mode\">\
<option value=\"auto\">auto: redact the person where others in the photo keep a use, else erase</option>\
<option value=\"whole\">whole: erase every photo</option>\
<option value=\"redact\">redact: pixelate the person, keep the photo</option></select></p>\
<p><label><input type=\"checkbox\" id=\"confirm\" name=\"confirm\" value=\"yes\"> I confirm the erasure</label></p>\
<p><button type=\"submit\" class=\"danger\" id=\"dsr-erase-submit\">Erase</button></p></form></section>",
            action = esc(&format!("{href}/erase")),
            csrf = csrf_field(&call.csrf)
        );

        let _ = write!(
            body,
            "<section class=\"card\"><h2>Close</h2>\
<form method=\"post\" action=\"{action}\" id=\"dsr-close\">{csrf}\
<p><label for=\"result\">Result (what was done and what the person was told)</label><br>\
<textarea id=\"result\" name=\"result\" rows=\"3\" cols=\"60\" required></textarea></p>\
<p><button type=\"submit\" id=\"dsr-close-submit\">Close the request</button></p></form></section>",
            action = esc(&format!("{href}/close")),
            csrf = csrf_field(&call.csrf)
        );
    }

    let actions: Vec<String> = case["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&when(a["at_ms"].as_u64().unwrap_or(0))),
                esc(s(a, "by")),
                esc(s(a, "action")),
                ids_html(&details_text(&a["details"]))
            )
        })
        .collect();
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Actions taken</h2>{}</section><p><a href=\"/dsr\">All requests</a></p>",
        table(&["When", "By", "Action", "Details"], &actions)
    );
    Ok(call.page(&format!("Request {id}"), &body))
}

/// POST /dsr/{case}/find: confirmed and suggested faces, and with a
/// reference photo similar stored ones; stored on the case.
pub fn find(call: &Call) -> Result<Resp, Fail> {
    let id = call.param(0).to_owned();
    let form = call.req.form()?;
    let reference = form.file("photo").map(|f| PhotoUpload {
        name: f.name.clone(),
        hex: hex_encode(&f.bytes),
    });
    let scan = ticked(form.get("scan"));
    if scan && reference.is_none() {
        return Err(Fail::bad(
            "scanning collections without recognition compares their faces with a reference photo: add one",
        ));
    }
    let max_distance = match form.get("max_distance") {
        Some(text) => Some(
            text.parse::<f32>()
                .ok()
                .filter(|d| d.is_finite() && *d > 0.0)
                .ok_or_else(|| {
                    Fail::bad(format!("max_distance `{text}` is not a positive number"))
                })?,
        ),
        None => None,
    };
    let found = ask(
        call,
        DsrRequest::Find {
            id: id.clone(),
            reference,
            max_distance,
            scan,
        },
    )?;
    Ok(done(
        call,
        &format!("{}#found", case_href(&id)),
        Value::Array(found),
    ))
}

/// GET /dsr/{case}/package: the access package as a download.
pub fn package(call: &Call) -> Result<Resp, Fail> {
    let id = call.param(0).to_owned();
    let lines = ask(call, DsrRequest::Package { id: id.clone() })?;
    let file = lines
        .first()
        .ok_or_else(|| Fail::internal("the daemon answered no access package"))?;
    let bytes = hex_decode(s(file, "hex"))
        .ok_or_else(|| Fail::internal("the access package arrived damaged (bad hex)"))?;
    Ok(Resp::attachment(
        "application/zip",
        &format!("{id}-access.zip"),
        bytes,
    ))
}

/// POST /dsr/{case}/erase: erases (or redacts) the person's photos. The
/// answer is a page, not a redirect: it lists who received the photos
/// (Art. 19), which is known only now — the evidence goes with the photos.
pub fn erase(call: &Call) -> Result<Resp, Fail> {
    let id = call.param(0).to_owned();
    let form = call.req.form()?;
    if !ticked(form.get("confirm")) {
        return Err(Fail::bad(
            "Tick the confirmation box: an erasure cannot be undone.",
        ));
    }
    let mode = parse_mode(form.get("mode"))?;
    let assets = form.all("asset");
    let lines = ask(
        call,
        DsrRequest::Erase {
            id: id.clone(),
            assets,
            mode,
        },
    )?;
    if call.req.is_api() {
        return Ok(done(call, &case_href(&id), Value::Array(lines)));
    }
    let mut erased = Vec::new();
    let mut notify = Vec::new();
    for line in &lines {
        if let Some(n) = line.get("notify") {
            notify.push(format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&utc(s(n, "at"))),
                esc(s(n, "actor")),
                esc(s(n, "action")),
                ids_html(s(n, "asset")),
                ids_html(&details_text(&n["details"]))
            ));
        } else {
            let faces: Vec<String> = line["faces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| f.to_string())
                .collect();
            erased.push(format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ids_html(s(line, "asset")),
                esc(s(line, "how")),
                esc(&faces.join(", ")),
                esc(&line["templates_purged"].as_u64().unwrap_or(0).to_string())
            ));
        }
    }
    let body = format!(
        "<p role=\"status\"><span class=\"badge ok\">done</span> {n} photo(s) erased or redacted for {case}.</p>\
<section class=\"card\"><h2>Photos</h2>{erased}</section>\
<section class=\"card\"><h2>Whom to tell (Art. 19)</h2>\
<p>These recipients received the photos before the erasure. Note them on the case before you close it: \
with the photos gone, the case page cannot list them again (the audit log keeps the events).</p>{notify}</section>\
<p><a href=\"{href}\" id=\"back-to-case\">Back to {case}</a></p>",
        n = erased.len(),
        case = esc(&id),
        erased = table(
            &[
                "Photo",
                "How",
                "Faces removed (numbers)",
                "Templates purged"
            ],
            &erased
        ),
        notify = table(&["When", "By", "Action", "Photo", "Details"], &notify),
        href = esc(&case_href(&id)),
    );
    Ok(call.page(&format!("Erasure for {id}"), &body))
}

/// POST /dsr/{case}/close: closes the case with its result.
pub fn close(call: &Call) -> Result<Resp, Fail> {
    let id = call.param(0).to_owned();
    let form = call.req.form()?;
    let result = form.require("result")?.to_owned();
    let lines = ask(
        call,
        DsrRequest::Close {
            id: id.clone(),
            result,
        },
    )?;
    Ok(done(
        call,
        &case_href(&id),
        lines.into_iter().next().unwrap_or(Value::Null),
    ))
}

/// GET /api/v1/dsr: the cases as JSON (`?all=true` closed ones too,
/// `?within=DAYS` only those due within that many days).
pub fn api_list(call: &Call) -> Result<Resp, Fail> {
    let cases = cases(call)?;
    Ok(Resp::json(StatusCode::OK, &cases))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deadlines_read_as_sentences() {
        let open = |left: i64, overdue: bool| json!({"due": "2026-12-23", "days_left": left, "overdue": overdue, "status": "open"});
        assert_eq!(deadline(&open(30, false)).0, "due 2026-12-23, 30 days left");
        assert_eq!(deadline(&open(1, false)).0, "due 2026-12-23, 1 day left");
        assert_eq!(deadline(&open(0, false)).0, "due 2026-12-23, today");
        let (text, class) = deadline(&open(-3, true));
        assert_eq!(text, "due 2026-12-23, overdue by 3 days");
        assert_eq!(class, "badge no");
        let closed =
            json!({"due": "2026-12-23", "days_left": -3, "overdue": false, "status": "closed"});
        assert!(deadline(&closed).0.starts_with("closed"));
    }

    #[test]
    fn form_words() {
        assert!(ticked(Some("on")) && ticked(Some("yes")) && ticked(Some("true")));
        assert!(!ticked(None) && !ticked(Some("false")) && !ticked(Some("0")));
        assert_eq!(parse_mode(None).unwrap(), Mode::Auto);
        assert_eq!(parse_mode(Some("redact")).unwrap(), Mode::Redact);
        assert!(parse_mode(Some("all")).is_err());
        assert_eq!(parse_kind("erasure").unwrap(), Kind::Erasure);
        assert!(parse_kind("delete").is_err());
    }
}
