//! The route table and the router. Every signed-in route is one [`Route`]:
//! method, path, the [`Permission`] it needs and what its `{id}` names
//! ([`Target`]); [`handle`] checks the session, CSRF, and `authz::check`
//! before the handler runs. The OpenAPI document is built from the same
//! table, and the authorisation-matrix test walks it, so a new route is
//! described and tested by being added here.

use std::sync::Arc;
use std::time::Instant;

use consentry_web::session;
use consentry_web::warp::http::StatusCode;
use consentry_web::warp::{self, Filter};

use super::authz::{self, Denied, Permission, Scope};
use super::http::{MAX_BODY, Req, Resp, parse_query};
use super::screens::{self, Fail};
use super::{Call, Console};
use crate::audit::{Entry, Outcome};
use crate::consent::model::Subject;
use crate::domain::{AssetId, PersonId};

/// What a route's first `{…}` segment names, for the authorisation check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing in a collection.
    Global,
    /// An asset id.
    Photo,
    /// A person id or name.
    Person,
    /// A consent id (checked as its person).
    Consent,
    /// A cluster of unknown faces (every member's collection must be covered).
    Cluster,
}

pub type Handler = fn(&Call) -> Result<Resp, Fail>;

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub permission: Permission,
    pub target: Target,
    pub summary: &'static str,
    pub handler: Handler,
}

macro_rules! route {
    ($method:literal, $path:literal, $perm:ident, $target:ident, $handler:path, $summary:literal) => {
        Route {
            method: $method,
            path: $path,
            permission: Permission::$perm,
            target: Target::$target,
            summary: $summary,
            handler: $handler,
        }
    };
}

use screens::{admin, audit as audit_screen, dashboard, dsr, people, photos, signin};

/// Every route behind the sign-in.
pub static ROUTES: &[Route] = &[
    route!("GET", "/", SignedIn, Global, dashboard::page, "Dashboard"),
    route!(
        "GET",
        "/status.json",
        SignedIn,
        Global,
        dashboard::live,
        "Ingest progress and queue depth (polled by the dashboard)"
    ),
    route!(
        "POST",
        "/logout",
        SignedIn,
        Global,
        signin::logout,
        "Sign out"
    ),
    route!(
        "GET",
        "/photos",
        PhotoView,
        Global,
        photos::grid,
        "Photo grid with filters"
    ),
    route!(
        "GET",
        "/photos/{id}",
        PhotoView,
        Photo,
        photos::page,
        "Photo page: faces, decisions, metadata, licence"
    ),
    route!(
        "GET",
        "/photos/{id}/thumb",
        PhotoView,
        Photo,
        photos::thumb,
        "Thumbnail"
    ),
    route!(
        "GET",
        "/photos/{id}/original",
        PhotoDownload,
        Photo,
        photos::original,
        "Download the original"
    ),
    route!(
        "GET",
        "/photos/{id}/redacted",
        PhotoDownload,
        Photo,
        photos::redacted,
        "Download with blocking faces pixelated"
    ),
    route!(
        "GET",
        "/photos/{id}/faces/{no}/crop",
        FaceView,
        Photo,
        photos::crop,
        "Face crop"
    ),
    route!(
        "POST",
        "/photos/{id}/faces/{no}/name",
        FaceEdit,
        Photo,
        photos::name_face,
        "Name a face (confirm as a person, new or known)"
    ),
    route!(
        "POST",
        "/photos/{id}/faces/{no}/reject",
        FaceEdit,
        Photo,
        photos::reject_face,
        "Reject a suggestion"
    ),
    route!(
        "POST",
        "/photos/{id}/licence",
        FaceEdit,
        Photo,
        photos::set_licence,
        "Record the photo's licence"
    ),
    route!(
        "POST",
        "/photos/{id}/restrict",
        Restrict,
        Photo,
        photos::restrict,
        "Restrict or lift the restriction of a photo"
    ),
    route!(
        "GET",
        "/review",
        FaceEdit,
        Global,
        people::review,
        "Review queue: unknown-face clusters and suggestions"
    ),
    route!(
        "POST",
        "/review/clusters/{cluster}/name",
        FaceEdit,
        Cluster,
        people::name_cluster,
        "Name a cluster"
    ),
    route!(
        "POST",
        "/review/clusters/{cluster}/dismiss",
        FaceEdit,
        Cluster,
        people::dismiss_cluster,
        "Dismiss a cluster"
    ),
    route!(
        "GET",
        "/people",
        PersonView,
        Global,
        people::list,
        "Persons"
    ),
    route!(
        "GET",
        "/people/{id}",
        PersonView,
        Person,
        people::page,
        "Person page: photos, consents, restriction"
    ),
    route!(
        "POST",
        "/people/{id}/consents",
        ConsentEdit,
        Person,
        people::add_consent,
        "Record a consent (with its signed document)"
    ),
    route!(
        "POST",
        "/people/{id}/merge",
        FaceEdit,
        Person,
        people::merge,
        "Merge another person (a duplicate) into this one"
    ),
    route!(
        "POST",
        "/people/{id}/optout",
        Restrict,
        Person,
        people::opt_out,
        "Opt a person out of recognition"
    ),
    route!(
        "POST",
        "/people/{id}/restrict",
        Restrict,
        Person,
        people::restrict,
        "Restrict or lift the restriction of a person"
    ),
    route!(
        "GET",
        "/consents/{id}/document",
        PersonView,
        Consent,
        people::document,
        "The signed consent document"
    ),
    route!(
        "POST",
        "/consents/{id}/withdraw",
        ConsentEdit,
        Consent,
        people::withdraw,
        "Withdraw a consent"
    ),
    route!(
        "GET",
        "/dsr",
        Dsr,
        Global,
        dsr::list,
        "Data-subject requests"
    ),
    route!("POST", "/dsr", Dsr, Global, dsr::open, "Open a request"),
    route!(
        "GET",
        "/dsr/{case}",
        Dsr,
        Global,
        dsr::page,
        "A request: deadline, found faces, actions"
    ),
    route!(
        "POST",
        "/dsr/{case}/find",
        Dsr,
        Global,
        dsr::find,
        "Find the person's photos"
    ),
    route!(
        "GET",
        "/dsr/{case}/package",
        Dsr,
        Global,
        dsr::package,
        "Download the access package"
    ),
    route!(
        "POST",
        "/dsr/{case}/erase",
        Dsr,
        Global,
        dsr::erase,
        "Erase the person's photos"
    ),
    route!(
        "POST",
        "/dsr/{case}/close",
        Dsr,
        Global,
        dsr::close,
        "Close the request"
    ),
    route!(
        "GET",
        "/audit",
        Audit,
        Global,
        audit_screen::page,
        "Audit viewer with filters"
    ),
    route!(
        "POST",
        "/audit/verify",
        Audit,
        Global,
        audit_screen::verify,
        "Verify the audit chain"
    ),
    route!(
        "GET",
        "/users",
        Users,
        Global,
        admin::users,
        "Console users"
    ),
    route!(
        "POST",
        "/users",
        Users,
        Global,
        admin::add_user,
        "Add a user"
    ),
    route!(
        "POST",
        "/users/{name}/disable",
        Users,
        Global,
        admin::disable,
        "Disable or enable a user"
    ),
    route!(
        "POST",
        "/users/{name}/roles",
        Users,
        Global,
        admin::roles,
        "Change a user's roles"
    ),
    route!(
        "GET",
        "/metrics",
        SystemStatus,
        Global,
        super::metrics::page,
        "Prometheus metrics"
    ),
    route!(
        "GET",
        "/api/v1/status",
        SignedIn,
        Global,
        dashboard::live,
        "Catalogue, queue and workers"
    ),
    route!(
        "GET",
        "/api/v1/photos",
        PhotoView,
        Global,
        photos::api_list,
        "Photos the caller may see (filters as the grid)"
    ),
    route!(
        "GET",
        "/api/v1/photos/{id}",
        PhotoView,
        Photo,
        photos::api_photo,
        "A photo with faces and decisions"
    ),
    route!(
        "GET",
        "/api/v1/photos/{id}/decisions",
        PhotoView,
        Photo,
        photos::api_decisions,
        "Usage decision per purpose (?date=)"
    ),
    route!(
        "GET",
        "/api/v1/photos/{id}/thumbnail",
        PhotoView,
        Photo,
        photos::thumb,
        "Thumbnail (JPEG)"
    ),
    route!(
        "GET",
        "/api/v1/photos/{id}/original",
        PhotoDownload,
        Photo,
        photos::original,
        "The original"
    ),
    route!(
        "GET",
        "/api/v1/photos/{id}/faces/{no}/crop",
        FaceView,
        Photo,
        photos::crop,
        "Face crop (JPEG)"
    ),
    route!(
        "POST",
        "/api/v1/photos/{id}/faces/{no}/name",
        FaceEdit,
        Photo,
        photos::name_face,
        "Name a face: {\"person\": NAME}"
    ),
    route!(
        "GET",
        "/api/v1/people/{id}",
        PersonView,
        Person,
        people::api_person,
        "A person with photos and consents"
    ),
    route!(
        "POST",
        "/api/v1/people/{id}/consents",
        ConsentEdit,
        Person,
        people::add_consent,
        "Record a consent"
    ),
    route!(
        "POST",
        "/api/v1/consents/{id}/withdraw",
        ConsentEdit,
        Consent,
        people::withdraw,
        "Withdraw a consent: {\"reason\": …}"
    ),
    route!(
        "GET",
        "/api/v1/search",
        FaceView,
        Global,
        people::api_search,
        "Photos of a person (?person=), within the caller's collections"
    ),
    route!(
        "GET",
        "/api/v1/dsr",
        Dsr,
        Global,
        dsr::api_list,
        "Data-subject requests"
    ),
    route!(
        "GET",
        "/api/v1/audit",
        Audit,
        Global,
        audit_screen::api_events,
        "Audit events (?since=&action=&actor=)"
    ),
    route!(
        "GET",
        "/api/v1/users",
        Users,
        Global,
        admin::api_users,
        "Console users"
    ),
    route!(
        "DELETE",
        "/api/v1/session",
        SignedIn,
        Global,
        signin::logout,
        "Sign out"
    ),
];

/// The warp filter serving everything: one catch-all that hands a [`Req`] to
/// [`handle`] on the blocking pool, wrapped in the security headers.
pub fn filter(
    console: Arc<Console>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
+ Clone
+ Send
+ Sync
+ 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let inner = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(consentry_web::tls::peer_addr())
        .and_then(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers,
                  body,
                  peer: Option<std::net::SocketAddr>| {
                let console = Arc::clone(&console);
                async move {
                    let Some(body) = read_body(body).await else {
                        return Ok(into_reply(Resp::text(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "text/plain; charset=utf-8",
                            format!("The upload is larger than {} MiB.\n", MAX_BODY >> 20),
                        )));
                    };
                    let req = Req {
                        method: method.as_str().to_owned(),
                        path: path.as_str().to_owned(),
                        query: parse_query(&query),
                        headers,
                        body,
                        peer: peer.map(|p| p.ip()),
                        parsed: Default::default(),
                    };
                    let resp = tokio::task::spawn_blocking(move || handle(&console, req))
                        .await
                        .unwrap_or_else(|_| {
                            Resp::text(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "text/plain",
                                "internal error".into(),
                            )
                        });
                    Ok::<_, warp::Rejection>(into_reply(resp))
                }
            },
        );
    consentry_web::headers::with_secure_headers(inner)
}

/// The request body, or `None` past [`MAX_BODY`] (or a broken stream).
async fn read_body<S, B>(mut stream: S) -> Option<Vec<u8>>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.ok()?;
        if body.len() as u64 + chunk.remaining() as u64 > MAX_BODY {
            return None;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Some(body)
}

fn into_reply(resp: Resp) -> warp::reply::Response {
    let mut reply = warp::reply::Response::new(resp.body.into());
    *reply.status_mut() = resp.status;
    *reply.headers_mut() = resp.headers;
    reply
}

/// One request, start to end.
pub fn handle(console: &Console, req: Req) -> Resp {
    let resp = route(console, &req);
    console.metrics.response(resp.status);
    resp
}

fn route(console: &Console, req: &Req) -> Resp {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => return screens::health(console),
        ("GET", "/login") => return signin::form(req, None),
        ("POST", "/login") => return signin::submit(console, req),
        ("POST", "/api/v1/session") => return signin::api_submit(console, req),
        ("GET", "/api/v1/openapi.json") => return Resp::json(StatusCode::OK, &openapi()),
        ("GET", path) if path.starts_with("/static/") => return screens::static_file(path),
        _ => {}
    }
    let token = req
        .header("cookie")
        .and_then(session::token_from_cookies)
        .map(str::to_owned);
    let session = token
        .as_deref()
        .and_then(|t| console.users.sessions().get(t, Instant::now()));
    let Some(session) = session else {
        return signin::unauthenticated(req);
    };
    let user = match console.users.get(&session.user) {
        Ok(Some(user)) if !user.disabled => user,
        _ => {
            if let Some(t) = &token {
                console.users.sessions().end(t);
            }
            return signin::unauthenticated(req);
        }
    };
    let actor = super::actor_for(&user.name);
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        let given = req.header("x-csrf-token").map(str::to_owned).or_else(|| {
            req.form()
                .ok()
                .and_then(|f| f.get("csrf").map(str::to_owned))
        });
        if !given.is_some_and(|g| session::csrf_matches(&session.csrf, &g)) {
            let _ = console.audit.record(
                &actor,
                Outcome::Refused,
                Entry::new("console.csrf", format!("route:{} {}", req.method, req.path)),
            );
            return screens::error_page(
                req,
                &session.csrf,
                &user,
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console. Reload the page and try again.",
            );
        }
    }
    let Some((route, params)) = find(&req.method, &req.path) else {
        let status = if ROUTES.iter().any(|r| matches(r.path, &req.path).is_some()) {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        return screens::error_page(req, &session.csrf, &user, status, "There is no such page.");
    };
    let mut call = Call {
        console,
        req,
        user,
        csrf: session.csrf,
        actor,
        params,
        overrides: false,
    };
    let decision = match resolve(&call, route) {
        Ok(decision) => decision,
        Err(fail) => return screens::fail(&call, fail),
    };
    match decision {
        Ok(overrides) => {
            call.overrides = overrides;
            match (route.handler)(&call) {
                Ok(resp) => resp,
                Err(fail) => screens::fail(&call, fail),
            }
        }
        Err(denied) => {
            let _ = console.audit.record(
                &call.actor,
                Outcome::Refused,
                Entry::new(
                    "console.denied",
                    format!("route:{} {}", req.method, req.path),
                )
                .with("permission", format!("{:?}", route.permission)),
            );
            match denied {
                Denied::Forbidden => screens::fail(
                    &call,
                    Fail::new(StatusCode::FORBIDDEN, "Your role does not allow this."),
                ),
                Denied::Hidden => screens::fail(&call, Fail::not_found()),
            }
        }
    }
}

/// The route for `method path`, with its `{…}` values.
pub fn find(method: &str, path: &str) -> Option<(&'static Route, Vec<String>)> {
    ROUTES
        .iter()
        .filter(|r| r.method == method)
        .find_map(|r| matches(r.path, path).map(|p| (r, p)))
}

fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if pattern.len() != path.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in pattern.iter().zip(&path) {
        if p.starts_with('{') {
            if s.is_empty() {
                return None;
            }
            let decoded = percent_decode(s)?;
            params.push(decoded);
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes: Vec<u8> = form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())?;
    String::from_utf8(bytes).ok()
}

/// The object the route names, checked against the user's grants.
fn resolve(call: &Call, route: &Route) -> Result<Result<bool, Denied>, Fail> {
    let grants = &call.user.grants;
    let console = call.console;
    let check = |scope| authz::check(grants, route.permission, scope);
    match route.target {
        Target::Global => Ok(check(Scope::Global)),
        Target::Photo => {
            let id = AssetId::parse(call.param(0)).ok_or_else(Fail::not_found)?;
            let asset = console
                .store
                .asset(&id)
                .map_err(Fail::internal)?
                .ok_or_else(Fail::not_found)?;
            let facts = screens::photos::photo_facts(
                console,
                call.people(),
                &asset,
                screens::photos::viewer_only(grants, route.permission),
            );
            let (restricted, usable) = (facts.restricted, facts.usable());
            Ok(check(Scope::Photo {
                collection: &asset.collection,
                restricted,
                usable,
            }))
        }
        Target::Person | Target::Consent => {
            let person = if route.target == Target::Consent {
                let consent = console
                    .rights
                    .consent(call.param(0))
                    .map_err(|_| Fail::not_found())?;
                consent.person.to_string()
            } else {
                call.param(0).to_owned()
            };
            let (person, collections) = person_scope(call, &person)?;
            let restricted = console.rights.restricted(&Subject::Person(person));
            Ok(check(Scope::Person {
                collections: &collections,
                restricted,
            }))
        }
        Target::Cluster => {
            let cluster = call
                .people()
                .clusters()
                .into_iter()
                .find(|c| c.id == call.param(0))
                .ok_or_else(Fail::not_found)?;
            let mut result = check(Scope::Global).map(|_| false);
            for collection in screens::people::cluster_collections(call, &cluster) {
                let scope = Scope::Photo {
                    collection: &collection,
                    restricted: false,
                    usable: false,
                };
                result = result.and(authz::check(grants, route.permission, scope));
            }
            Ok(result)
        }
    }
}

/// A person's id and the collections of their confirmed photos.
pub fn person_scope(call: &Call, person: &str) -> Result<(PersonId, Vec<String>), Fail> {
    let (person, assets) = call
        .people()
        .assets_of(person)
        .map_err(|_| Fail::not_found())?;
    let mut collections: Vec<String> = Vec::new();
    for (asset, _) in assets {
        if let Some(asset) = call.console.store.asset(&asset).map_err(Fail::internal)?
            && !collections.contains(&asset.collection)
        {
            collections.push(asset.collection);
        }
    }
    Ok((person.id, collections))
}

/// The OpenAPI 3 document: the table's `/api/v1` routes.
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    let api = ROUTES.iter().filter(|r| r.path.starts_with("/api/v1/"));
    let extra = [(
        "POST",
        "/api/v1/session",
        "Sign in: {\"user\", \"password\"} → session cookie and CSRF token",
    )];
    let entries = api
        .map(|r| (r.method, r.path, r.summary, Some(r.permission)))
        .chain(extra.iter().map(|(m, p, s)| (*m, *p, *s, None)));
    for (method, path, summary, permission) in entries {
        let params: Vec<serde_json::Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| serde_json::json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = serde_json::json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "401": {"description": "Not signed in"},
                "403": {"description": "The role does not allow this, or the CSRF token is missing"},
                "404": {"description": "No such object, or not in the caller's collections"}
            }
        });
        if let Some(permission) = permission {
            op["x-permission"] = serde_json::to_value(permission).unwrap_or_default();
            op["security"] = serde_json::json!([{"session": []}]);
        }
        let entry = paths
            .entry(path.to_owned())
            .or_insert_with(|| serde_json::json!({}));
        entry[method.to_lowercase()] = op;
    }
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {
            "title": "consentry API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The console's operations as JSON. Sign in with POST /api/v1/session; send the session cookie, and the CSRF token in X-CSRF-Token on every POST and DELETE."
        },
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": session::COOKIE}}},
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_their_params() {
        let (route, params) = find("GET", "/photos/abc/faces/2/crop").unwrap();
        assert_eq!(route.path, "/photos/{id}/faces/{no}/crop");
        assert_eq!(params, ["abc", "2"]);
        assert!(find("DELETE", "/photos/abc").is_none());
        assert_eq!(find("GET", "/people/Ada%20L").unwrap().1, ["Ada L"]);
    }

    #[test]
    fn every_route_is_unique_and_every_api_route_is_described() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
        let doc = openapi();
        for r in ROUTES.iter().filter(|r| r.path.starts_with("/api/v1/")) {
            assert!(
                doc["paths"][r.path][r.method.to_lowercase()].is_object(),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
}
