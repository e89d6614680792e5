//! Security headers on every console response.
//!
//! [`secure_headers`] sets HSTS, a strict Content-Security-Policy (own origin
//! only, no inline script or style, no framing), `nosniff`, no referrer, no
//! camera/microphone/location, same-origin isolation, and `Cache-Control:
//! no-store` unless the handler chose its own caching (e.g. for static assets).
//! [`with_secure_headers`] applies it to every reply of a warp filter.
//!
//! Failure modes: none; the values are constants known to be valid header values.
//! Rejections that escape the wrapped filter are answered by warp without these
//! headers, so wrap the route tree *after* its `.recover(…)`.

use warp::http::HeaderMap;
use warp::http::header::{self, HeaderName, HeaderValue};
use warp::{Filter, Reply};

/// The Content-Security-Policy of the console: everything from our own origin,
/// images also as `data:` URLs, nothing inline, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; \
     base-uri 'none'; object-src 'none'";

const HEADERS: [(HeaderName, &str); 8] = [
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ),
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
];

/// Sets the console's security headers on `headers`, replacing earlier values,
/// and `Cache-Control: no-store` if no `Cache-Control` is set yet.
pub fn secure_headers(headers: &mut HeaderMap) {
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Wraps `filter` so that each of its replies carries [`secure_headers`].
pub fn with_secure_headers<F, R>(
    filter: F,
) -> impl Filter<Extract = (warp::reply::Response,), Error = F::Error> + Clone
where
    F: Filter<Extract = (R,)> + Clone + Send + Sync + 'static,
    R: Reply,
{
    filter.map(|reply: R| {
        let mut response = reply.into_response();
        secure_headers(response.headers_mut());
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_all_headers_and_default_no_store() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        secure_headers(&mut headers);
        assert_eq!(
            headers["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; \
             object-src 'none'"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers.get_all("x-frame-options").iter().count(), 1);
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(
            headers["permissions-policy"],
            "camera=(), microphone=(), geolocation=()"
        );
        assert_eq!(headers["cross-origin-opener-policy"], "same-origin");
        assert_eq!(headers["cross-origin-resource-policy"], "same-origin");
        assert_eq!(headers["cache-control"], "no-store");
    }

    #[test]
    fn keeps_a_chosen_cache_control() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        secure_headers(&mut headers);
        assert_eq!(headers["cache-control"], "public, max-age=3600");
        assert_eq!(headers.get_all("cache-control").iter().count(), 1);
    }

    #[tokio::test]
    async fn wraps_a_filter() {
        use warp::Filter as _;
        let assets = warp::path("app.css").map(|| {
            warp::reply::with_header("body{}".to_owned(), "cache-control", "max-age=60")
                .into_response()
        });
        let page = warp::path("page").map(|| "hello".to_owned().into_response());
        let routes = with_secure_headers(assets.or(page).unify());
        let svc = warp::service(routes);
        for (path, cache) in [("/page", "no-store"), ("/app.css", "max-age=60")] {
            let request = warp::http::Request::get(path).body(String::new()).unwrap();
            let response = tower_service::Service::call(&mut svc.clone(), request)
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["cache-control"], cache, "{path}");
            assert_eq!(response.headers()["x-frame-options"], "DENY", "{path}");
        }
    }
}
