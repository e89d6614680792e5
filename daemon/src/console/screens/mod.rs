//! The screens, one file per area. Each handler takes a [`Call`] (already
//! authorised for its route) and answers HTML, or JSON under `/api/v1`.
//! Failures are a [`Fail`]: a status and a sentence for a person.

pub mod admin;
pub mod audit;
pub mod dashboard;
pub mod dsr;
pub mod people;
pub mod photos;
pub mod signin;

use consentry_web::warp::http::StatusCode;

use super::http::{Req, Resp};
use super::render::{esc, page};
use super::users::User;
use super::{Call, Console};

/// Why a handler could not answer.
#[derive(Debug)]
pub struct Fail {
    pub status: StatusCode,
    pub message: String,
}

impl Fail {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Fail {
        Fail {
            status,
            message: message.into(),
        }
    }

    pub fn not_found() -> Fail {
        Fail::new(
            StatusCode::NOT_FOUND,
            "There is no such page, or it is not in your collections.",
        )
    }

    /// A request the user can correct (a form field, an unknown name).
    pub fn bad(message: impl Into<String>) -> Fail {
        Fail::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn internal(err: impl std::fmt::Display) -> Fail {
        log::error!(target: "consentry::console", "{err}");
        Fail::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The console could not answer: {err}"),
        )
    }
}

impl From<String> for Fail {
    /// Errors of `control::answer` are written for the operator: shown as is.
    fn from(message: String) -> Fail {
        Fail::bad(message)
    }
}

/// Renders a failure as a page, or as `{"error": …}` under `/api/v1`.
pub fn fail(call: &Call, fail: Fail) -> Resp {
    error_page(call.req, &call.csrf, &call.user, fail.status, &fail.message)
}

pub fn error_page(req: &Req, csrf: &str, user: &User, status: StatusCode, message: &str) -> Resp {
    if req.is_api() {
        return Resp::json(status, &serde_json::json!({ "error": message }));
    }
    let body = format!(
        "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">Back to the dashboard</a></p>",
        esc(message)
    );
    let frame = super::render::Frame {
        path: &req.path,
        csrf,
        user,
    };
    Resp::html(
        status,
        page(&frame, status.canonical_reason().unwrap_or("Error"), &body),
    )
}

/// `/healthz`: liveness for load balancers and systemd; no data.
pub fn health(console: &Console) -> Resp {
    let ok = console.store.healthy();
    let (status, text) = if ok {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
    };
    Resp::text(status, "text/plain; charset=utf-8", text.into())
}

/// Files embedded from `web/static`.
pub fn static_file(path: &str) -> Resp {
    match consentry_web::assets::get(path.trim_start_matches("/static/")) {
        Some((mime, bytes)) => Resp::bytes(mime, bytes.to_vec()).with_header(
            consentry_web::warp::http::header::CACHE_CONTROL,
            "public, max-age=3600",
        ),
        None => Resp::text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// `ok`/`error` JSON for API form posts, a redirect for the console's.
pub fn done(call: &Call, to: &str, value: serde_json::Value) -> Resp {
    if call.req.is_api() {
        Resp::json(StatusCode::OK, &value)
    } else {
        Resp::redirect(to)
    }
}
