//! Sign-in and sign-out. The sign-in form carries its own CSRF token (a
//! short-lived `__Host-` cookie that must match the form field), so no site
//! can sign a browser in under another account. Every attempt is audited
//! (`session.signin` ok or refused, with the reason); the password is never
//! logged, echoed or kept.

use std::time::Instant;

use consentry_web::session;
use consentry_web::warp::http::{StatusCode, header};

use crate::audit::{Entry, Outcome};
use crate::console::http::{Req, Resp};
use crate::console::render::{bare, esc};
use crate::console::users::SignInError;
use crate::console::{Call, Console, actor_for};

use super::Fail;

const LOGIN_COOKIE: &str = "__Host-consentry-login";

fn login_cookie(req: &Req) -> Option<String> {
    req.header("cookie")?.split(';').find_map(|c| {
        c.trim()
            .strip_prefix(LOGIN_COOKIE)
            .and_then(|v| v.strip_prefix('='))
            .map(str::to_owned)
    })
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the system random source");
    crate::pipeline::store::crypto::hex_encode(&bytes)
}

/// Where to go after signing in: only a path on this console.
fn next_path(text: Option<&str>) -> String {
    match text {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => "/".to_owned(),
    }
}

pub fn form(req: &Req, error: Option<(StatusCode, &str)>) -> Resp {
    // One token per browser, kept while its cookie lives: a second sign-in
    // tab, a reload or a stray request redirected here must not invalidate
    // the form already on screen.
    let token = login_cookie(req)
        .filter(|t| t.len() == 48 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_token);
    let next = next_path(req.query("next"));
    let (status, message) = match error {
        Some((status, message)) => (
            status,
            format!(
                "<p class=\"error\" role=\"alert\" id=\"signin-error\">{}</p>",
                esc(message)
            ),
        ),
        None => (StatusCode::OK, String::new()),
    };
    let body = format!(
        "{message}<form method=\"post\" action=\"/login\" class=\"stack signin\">\
<input type=\"hidden\" name=\"login_token\" value=\"{token}\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
<label>User name <input type=\"text\" name=\"user\" id=\"user\" autocomplete=\"username\" required autofocus></label>\
<label>Password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\" id=\"signin\">Sign in</button></form>\
<p class=\"muted\">consentry — the photo bank that knows who may be published.</p>",
        esc(&next)
    );
    Resp::html(status, bare("Sign in", &body)).with_header(
        header::SET_COOKIE,
        &format!("{LOGIN_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=900"),
    )
}

fn audit_attempt(console: &Console, user: &str, req: &Req, outcome: Outcome, why: &str) {
    let name: String = user.chars().take(64).collect();
    let mut entry = Entry::new("session.signin", format!("user:{name}")).with(
        "address",
        req.peer.map(|p| p.to_string()).unwrap_or_default(),
    );
    if !why.is_empty() {
        entry = entry.with("error", why);
    }
    if let Err(err) = console.audit.record(&actor_for(&name), outcome, entry) {
        log::error!(target: "consentry::audit", "cannot write the audit log: {err}");
    }
}

/// Checks name and password; on success a session and its cookie.
fn sign_in(
    console: &Console,
    req: &Req,
    user: &str,
    password: &str,
) -> Result<(String, session::NewSession), (StatusCode, String)> {
    let ip = req.peer.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    match console.users.authenticate(user, password, ip) {
        Ok(found) => {
            let now = Instant::now();
            console.users.sessions().sweep(now);
            let new = console.users.sessions().create(&found.name, now);
            audit_attempt(console, &found.name, req, Outcome::Ok, "");
            log::info!(target: "consentry::console", user = found.name.as_str(); "{} signed in", found.name);
            Ok((found.name, new))
        }
        Err(err) => {
            let (status, message, why) = match err {
                SignInError::Wrong | SignInError::Disabled => (
                    StatusCode::UNAUTHORIZED,
                    "Wrong user name or password.".to_owned(),
                    if matches!(err, SignInError::Disabled) {
                        "disabled"
                    } else {
                        "wrong name or password"
                    }
                    .to_owned(),
                ),
                SignInError::Locked(locked) => {
                    let minutes = locked.retry_after.as_secs().div_ceil(60).max(1);
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "Too many failed attempts. Try again in {minutes} minute(s), or ask an administrator."
                        ),
                        "locked".to_owned(),
                    )
                }
                SignInError::Store(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The console cannot check passwords now.".into(),
                    e,
                ),
            };
            log::warn!(target: "consentry::console", "sign-in refused for {:?} from {:?}: {why}", user.chars().take(64).collect::<String>(), req.peer);
            audit_attempt(console, user, req, Outcome::Refused, &why);
            Err((status, message))
        }
    }
}

pub fn submit(console: &Console, req: &Req) -> Resp {
    let Ok(f) = req.form() else {
        return form(
            req,
            Some((
                StatusCode::BAD_REQUEST,
                "The sign-in form could not be read.",
            )),
        );
    };
    let given = f.get("login_token").unwrap_or("");
    if !login_cookie(req).is_some_and(|c| session::csrf_matches(&c, given)) {
        return form(
            req,
            Some((
                StatusCode::FORBIDDEN,
                "The sign-in form expired. Please try again.",
            )),
        );
    }
    let (user, password) = (f.get("user").unwrap_or(""), f.get("password").unwrap_or(""));
    match sign_in(console, req, user, password) {
        Ok((_, new)) => Resp::redirect(&next_path(f.get("next")))
            .with_header(header::SET_COOKIE, &session::set_cookie(&new.token))
            .with_header(
                header::SET_COOKIE,
                &format!("{LOGIN_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
        Err((status, message)) => form(req, Some((status, &message))),
    }
}

/// `POST /api/v1/session` with `{"user", "password"}` (JSON only, so no
/// cross-site form can post it).
pub fn api_submit(console: &Console, req: &Req) -> Resp {
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Resp::json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &serde_json::json!({"error": "send {\"user\", \"password\"} as application/json"}),
        );
    }
    let Ok(f) = req.form() else {
        return Resp::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "the body is not JSON"}),
        );
    };
    match sign_in(
        console,
        req,
        f.get("user").unwrap_or(""),
        f.get("password").unwrap_or(""),
    ) {
        Ok((user, new)) => Resp::json(
            StatusCode::OK,
            &serde_json::json!({"user": user, "csrf": new.csrf}),
        )
        .with_header(header::SET_COOKIE, &session::set_cookie(&new.token)),
        Err((status, message)) => Resp::json(status, &serde_json::json!({"error": message})),
    }
}

pub fn logout(call: &Call) -> Result<Resp, Fail> {
    if let Some(token) = call
        .req
        .header("cookie")
        .and_then(session::token_from_cookies)
    {
        call.console.users.sessions().end(token);
    }
    call.audit(Entry::new(
        "session.signout",
        format!("user:{}", call.user.name),
    ))?;
    let resp = if call.req.is_api() {
        Resp::json(StatusCode::OK, &serde_json::json!({"signed_out": true}))
    } else {
        Resp::redirect("/login")
    };
    Ok(resp.with_header(header::SET_COOKIE, &session::clear_cookie()))
}

/// Not signed in: the API says 401; a page sends the browser to sign in.
pub fn unauthenticated(req: &Req) -> Resp {
    if req.is_api() {
        return Resp::json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "sign in first (POST /api/v1/session)"}),
        );
    }
    if req.method == "GET" {
        let next: String = form_urlencoded::byte_serialize(req.path.as_bytes()).collect();
        return Resp::redirect(&format!("/login?next={next}"));
    }
    Resp::html(
        StatusCode::UNAUTHORIZED,
        bare(
            "Signed out",
            "<p class=\"error\">Your session has ended. <a href=\"/login\">Sign in again</a>.</p>",
        ),
    )
}
