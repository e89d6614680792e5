//! Server-rendered HTML: the page frame (navigation by what the user may do),
//! escaping, and the small pieces screens share. No template engine: every
//! value goes through [`esc`] (or [`attr`]) on its way into the page.

use std::fmt::Write;

use super::Call;
use super::authz::{Permission, holds};
use super::users::User;

/// What the page frame needs: where we are, the CSRF token, who is signed in.
pub struct Frame<'a> {
    pub path: &'a str,
    pub csrf: &'a str,
    pub user: &'a User,
}

impl Call<'_> {
    pub fn frame(&self) -> Frame<'_> {
        Frame {
            path: &self.req.path,
            csrf: &self.csrf,
            user: &self.user,
        }
    }

    /// A full page as the response.
    pub fn page(&self, title: &str, body: &str) -> super::http::Resp {
        super::http::Resp::html(
            consentry_web::warp::http::StatusCode::OK,
            page(&self.frame(), title, body),
        )
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A URL query value.
pub fn q(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

const NAV: [(&str, &str, Permission); 7] = [
    ("/", "Dashboard", Permission::SignedIn),
    ("/photos", "Photos", Permission::PhotoView),
    ("/review", "Review", Permission::FaceEdit),
    ("/people", "People", Permission::PersonView),
    ("/dsr", "Requests", Permission::Dsr),
    ("/audit", "Audit", Permission::Audit),
    ("/users", "Users", Permission::Users),
];

/// The whole page around `body`.
pub fn page(call: &Frame, title: &str, body: &str) -> String {
    let mut nav = String::new();
    for (href, label, permission) in NAV {
        if holds(&call.user.grants, permission) {
            let current = if call.path == href || (href != "/" && call.path.starts_with(href)) {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
        }
    }
    let roles: Vec<String> = call.user.grants.iter().map(|g| g.to_string()).collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · consentry</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/static/console.css\">\
<script src=\"/static/console.js\" defer></script></head>\
<body><header class=\"top\"><a class=\"brand\" href=\"/\">consentry</a><nav>{nav}</nav>\
<form class=\"signout\" method=\"post\" action=\"/logout\">{csrf}\
<span class=\"who\" title=\"{roles}\">{user}</span><button type=\"submit\">Sign out</button></form></header>\
<main><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
        csrf = csrf_field(call.csrf),
        roles = esc(&roles.join(", ")),
        user = esc(&call.user.name),
    )
}

/// A page for someone not signed in (the sign-in form, errors).
pub fn bare(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · consentry</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/static/console.css\"></head>\
<body class=\"bare\"><main><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title)
    )
}

pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A one-button form posting to `action`.
pub fn button(call: &Call, action: &str, label: &str, class: &str) -> String {
    button_with(call, action, label, class, &[])
}

/// A one-button form posting `hidden` fields to `action`.
pub fn button_with(
    call: &Call,
    action: &str,
    label: &str,
    class: &str,
    hidden: &[(&str, &str)],
) -> String {
    let fields: String = hidden
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect();
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}{fields}<button type=\"submit\" class=\"{class}\">{}</button></form>",
        esc(action),
        csrf_field(&call.csrf),
        esc(label)
    )
}

/// `allowed` / `blocked` badge.
pub fn verdict(allowed: bool) -> &'static str {
    if allowed {
        "<span class=\"badge ok\">allowed</span>"
    } else {
        "<span class=\"badge no\">blocked</span>"
    }
}

pub fn table(headers: &[&str], rows: &[String]) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">Nothing here.</p>".into();
    }
    let mut html = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str(row);
    }
    html.push_str("</tbody></table>");
    html
}

/// A JSON field as text ("" when absent).
pub fn s<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// A JSON object's fields as `key=value` joined by `sep` (event details).
pub fn details_text(details: &serde_json::Value, sep: &str) -> String {
    details
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    )
                })
                .collect::<Vec<_>>()
                .join(sep)
        })
        .unwrap_or_default()
}
