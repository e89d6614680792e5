//! The audit viewer: the newest events matching a few filters, and the chain's
//! verification. Reading the log goes through `AuditRequest::Export`, so each
//! look at it is itself an `audit.export` event; the filters apply in memory.
//!
//! Verifying walks the whole chain (and is audited), so the page does not run
//! it on every view: it shows the last result, kept since the daemon started,
//! and a button runs it again.

use std::sync::Mutex;

use consentry_web::warp::http::StatusCode;
use jiff::civil::Date;
use serde_json::Value;

use super::{Fail, done};
use crate::audit::commands::{AuditRequest, ExportFormat};
use crate::console::Call;
use crate::console::http::Resp;
use crate::console::render::{button, esc, s, table};
use crate::control::Request;

/// Events shown on the page (and the API's default).
const PAGE_EVENTS: usize = 200;
/// The most events one API call returns.
const MAX_API_EVENTS: usize = 10_000;
/// Without a `since`, the page looks this many days back (the API from the
/// start): every export serialises all matching events before filtering.
const PAGE_DAYS: i64 = 30;

/// The last verification: when (RFC 3339) and the report.
static LAST_VERIFY: Mutex<Option<(String, Value)>> = Mutex::new(None);

/// UTC milliseconds as `2026-11-23 10:04:05 UTC`.
pub(super) fn when(ms: u64) -> String {
    let text = crate::clock::rfc3339(ms);
    match text.get(..19) {
        Some(head) => format!("{} UTC", head.replacen('T', " ", 1)),
        None => text,
    }
}

/// RFC 3339 UTC text (`2026-11-23T15:28:35.183Z`) as `2026-11-23 15:28:35 UTC`.
pub(super) fn utc(rfc3339: &str) -> String {
    match rfc3339.get(..19) {
        Some(head) if rfc3339.ends_with('Z') => format!("{} UTC", head.replacen('T', " ", 1)),
        _ => rfc3339.to_owned(),
    }
}

/// `text` with every asset id (64 hex digits) cut to its first 16, as the
/// CLI lists them; `None` when there is none.
fn shorten_ids(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut i, mut last) = (0, 0);
    while i < bytes.len() {
        if bytes[i].is_ascii_hexdigit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_hexdigit() {
                j += 1;
            }
            if j - i == 64 && (j == bytes.len() || !bytes[j].is_ascii_alphanumeric()) {
                out.push_str(&text[last..i + 16]);
                out.push('…');
                last = j;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    (last > 0).then(|| {
        out.push_str(&text[last..]);
        out
    })
}

/// `text` escaped for HTML, asset ids shortened (the whole text in the
/// tooltip), so tables fit a tablet.
pub(super) fn ids_html(text: &str) -> String {
    match shorten_ids(text) {
        Some(short) => format!("<span title=\"{}\">{}</span>", esc(text), esc(&short)),
        None => esc(text),
    }
}

/// What the events are filtered by.
#[derive(Debug, Default, Clone, PartialEq)]
struct Filter {
    since_ms: u64,
    /// Prefix of the action (`dsr.`, `asset.download`).
    action: Option<String>,
    /// Part of the actor's name, any case.
    actor: Option<String>,
}

impl Filter {
    fn matches(&self, event: &Value) -> bool {
        self.action
            .as_deref()
            .is_none_or(|a| s(event, "action").starts_with(a))
            && self
                .actor
                .as_deref()
                .is_none_or(|a| s(event, "actor").to_lowercase().contains(&a.to_lowercase()))
    }
}

/// A day (local midnight in `consent.time_zone`) or an RFC 3339 instant, as
/// `consentry audit export --since` takes it.
fn since_ms(call: &Call, text: &str) -> Result<u64, Fail> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond().max(0) as u64);
    }
    let date: Date = text.parse().map_err(|_| {
        Fail::bad(format!(
            "since `{text}`: give a day (2027-01-31) or an RFC 3339 instant"
        ))
    })?;
    day_start_ms(call, date)
}

fn day_start_ms(call: &Call, date: Date) -> Result<u64, Fail> {
    let tz = call
        .console
        .config
        .consent
        .time_zone()
        .map_err(Fail::internal)?;
    let ts = date.to_zoned(tz).map_err(Fail::internal)?.timestamp();
    Ok(ts.as_millisecond().max(0) as u64)
}

/// The newest `limit` events matching `filter`, newest first.
fn events(call: &Call, filter: &Filter, limit: usize) -> Result<(Vec<Value>, usize), Fail> {
    let all = call.ask(Request::Audit {
        request: AuditRequest::Export {
            since_ms: filter.since_ms,
            format: ExportFormat::Jsonl,
        },
    })?;
    let matching: Vec<Value> = all.into_iter().filter(|e| filter.matches(e)).collect();
    let total = matching.len();
    let newest = matching.into_iter().rev().take(limit).collect();
    Ok((newest, total))
}

fn text_filter(call: &Call, key: &str) -> Option<String> {
    call.req
        .query(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn details_text(details: &Value) -> String {
    crate::console::render::details_text(details, "; ")
}

fn verification(call: &Call) -> String {
    let last = LAST_VERIFY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let result = match last {
        None => {
            "<p class=\"muted\" id=\"verify-result\">Not verified since the daemon started.</p>"
                .to_owned()
        }
        Some((at, report)) if report["ok"].as_bool() == Some(true) => format!(
            "<p id=\"verify-result\"><span class=\"badge ok\">intact</span> at {}: {} events, last {} (hash {}…), {} checkpoint(s), signed up to event {}.</p>",
            esc(&at),
            esc(&report["events"].to_string()),
            esc(&report["last_seq"].to_string()),
            esc(s(&report, "last_hash").get(..16).unwrap_or("")),
            esc(&report["checkpoints"].to_string()),
            esc(&report["checkpointed_seq"].to_string()),
        ),
        Some((at, report)) => format!(
            "<p id=\"verify-result\" role=\"alert\"><span class=\"badge no\">broken</span> at {}: first bad event {}: {}</p>",
            esc(&at),
            esc(&report["first_bad_seq"].to_string()),
            esc(report["problem"].as_str().unwrap_or("?")),
        ),
    };
    format!(
        "<section class=\"card\"><h2>Chain verification</h2>{result}{}</section>",
        button(call, "/audit/verify", "Verify the chain now", "")
    )
}

/// GET /audit: the filter form, the last verification and the newest
/// matching events.
pub fn page(call: &Call) -> Result<Resp, Fail> {
    let since_text = text_filter(call, "since");
    let since = match &since_text {
        Some(text) => text.clone(),
        None => call
            .console
            .rights
            .today()
            .checked_sub(jiff::Span::new().days(PAGE_DAYS))
            .map_err(Fail::internal)?
            .to_string(),
    };
    let filter = Filter {
        since_ms: since_ms(call, &since)?,
        action: text_filter(call, "action"),
        actor: text_filter(call, "actor"),
    };
    let (events, total) = events(call, &filter, PAGE_EVENTS)?;
    let rows: Vec<String> = events
        .iter()
        .map(|e| {
            let outcome = match s(e, "outcome") {
                "ok" => "<span class=\"badge ok\">ok</span>".to_owned(),
                other => format!("<span class=\"badge no\">{}</span>", esc(other)),
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td><td>{}</td></tr>",
                esc(&e["seq"].to_string()),
                esc(&when(e["at_ms"].as_u64().unwrap_or(0))),
                esc(s(e, "actor")),
                esc(s(e, "via")),
                esc(s(e, "action")),
                ids_html(s(e, "object")),
                ids_html(&details_text(&e["details"])),
            )
        })
        .collect();
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let date_value = if since.parse::<Date>().is_ok() {
        esc(&since)
    } else {
        String::new()
    };
    let form = format!(
        "<form method=\"get\" action=\"/audit\" class=\"filters\" id=\"audit-filters\">\
<label for=\"since\">Since</label> <input type=\"date\" id=\"since\" name=\"since\" value=\"{date_value}\"> \
<label for=\"action\">Action starts with</label> <input type=\"text\" id=\"action\" name=\"action\" value=\"{}\" placeholder=\"dsr.\"> \
<label for=\"actor\">Actor</label> <input type=\"text\" id=\"actor\" name=\"actor\" value=\"{}\"> \
<button type=\"submit\" id=\"audit-filter\">Filter</button> <a href=\"/audit\">Reset</a></form>",
        value(&filter.action),
        value(&filter.actor),
    );
    let summary = format!(
        "<p class=\"muted\" id=\"audit-count\">{} since {}{}. Viewing the log is itself recorded.</p>",
        if total > events.len() {
            format!("The newest {} of {total} matching events", events.len())
        } else if total == 1 {
            "One matching event".to_owned()
        } else {
            format!("{total} matching events")
        },
        esc(&when(filter.since_ms)),
        if since_text.is_none() {
            format!(" (the last {PAGE_DAYS} days)")
        } else {
            String::new()
        },
    );
    let body = format!(
        "{}<section class=\"card\"><h2>Events</h2>{form}{summary}{}</section>",
        verification(call),
        table(
            &[
                "Seq", "Time", "Actor", "Via", "Action", "Object", "Outcome", "Details"
            ],
            &rows
        ),
    );
    Ok(call.page("Audit log", &body))
}

/// POST /audit/verify: walks the chain and the checkpoints, keeps the report
/// for the page.
pub fn verify(call: &Call) -> Result<Resp, Fail> {
    let report = call
        .ask(Request::Audit {
            request: AuditRequest::Verify {
                checkpoints: vec![],
            },
        })?
        .into_iter()
        .next()
        .ok_or_else(|| Fail::internal("the verification answered no report"))?;
    *LAST_VERIFY.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((when(crate::clock::now_ms()), report.clone()));
    Ok(done(call, "/audit", report))
}

/// GET /api/v1/audit?since=&action=&actor=&limit=: the newest matching
/// events (200 unless `limit`, at most 10 000), newest first; `since` absent:
/// from the start of the log.
pub fn api_events(call: &Call) -> Result<Resp, Fail> {
    let since = match text_filter(call, "since") {
        Some(text) => since_ms(call, &text)?,
        None => 0,
    };
    let limit = match call.req.query("limit") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_API_EVENTS).contains(n))
            .ok_or_else(|| Fail::bad(format!("limit `{text}`: give 1 to {MAX_API_EVENTS}")))?,
        None => PAGE_EVENTS,
    };
    let filter = Filter {
        since_ms: since,
        action: text_filter(call, "action"),
        actor: text_filter(call, "actor"),
    };
    let (events, _) = events(call, &filter, limit)?;
    Ok(Resp::json(StatusCode::OK, &events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_match_action_prefix_and_actor_part() {
        let event = json!({"action": "dsr.erase", "actor": "Ada (sudo by root)"});
        let f = |action: Option<&str>, actor: Option<&str>| Filter {
            since_ms: 0,
            action: action.map(str::to_owned),
            actor: actor.map(str::to_owned),
        };
        assert!(f(None, None).matches(&event));
        assert!(f(Some("dsr."), Some("ada")).matches(&event));
        assert!(!f(Some("asset."), None).matches(&event));
        assert!(!f(None, Some("bob")).matches(&event));
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(when(1_795_428_245_123), "2026-11-23 10:04:05 UTC");
        assert_eq!(utc("2026-11-23T10:04:05.123Z"), "2026-11-23 10:04:05 UTC");
        assert_eq!(utc("yesterday"), "yesterday");
    }

    #[test]
    fn asset_ids_are_shortened() {
        let id = "1a89b558890224d4dc429bf5d9f56a5b6c6e632500917537cfe376993e2430ff";
        assert_eq!(
            shorten_ids(&format!("face:{id}:0")).unwrap(),
            "face:1a89b558890224d4…:0"
        );
        assert_eq!(
            shorten_ids(&format!("asset={id}, case=DSR-2026-0001")).unwrap(),
            "asset=1a89b558890224d4…, case=DSR-2026-0001"
        );
        assert_eq!(shorten_ids("person:86463124dc780941"), None);
        assert_eq!(shorten_ids(&format!("x{id}")), None);
        assert!(ids_html(&format!("asset:{id}<")).contains(&format!("title=\"asset:{id}&lt;\"")));
        assert_eq!(ids_html("a<b"), "a&lt;b");
    }
}
