//! The console's view of HTTP: one [`Req`] in, one [`Resp`] out, built by the
//! router from warp's parts so handlers are plain synchronous functions (they
//! run on the blocking pool: sled and the people lock block).
//!
//! Forms arrive URL-encoded or as `multipart/form-data` (document uploads);
//! both become a [`Form`] of text fields and files.

use std::collections::HashMap;
use std::net::IpAddr;

use consentry_web::warp::http::{HeaderMap, HeaderValue, StatusCode, header};

/// Largest request body accepted (a scanned consent document).
pub const MAX_BODY: u64 = 32 * 1024 * 1024;

pub struct Req {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub peer: Option<IpAddr>,
    /// The body as a form, parsed on first use (the CSRF check and the
    /// handler share it).
    pub parsed: std::sync::OnceLock<Result<Form, String>>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn is_api(&self) -> bool {
        self.path.starts_with("/api/")
    }

    /// The body as a form (URL-encoded or multipart), or JSON as flat fields.
    pub fn form(&self) -> Result<&Form, String> {
        self.parsed
            .get_or_init(|| self.parse_form())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn parse_form(&self) -> Result<Form, String> {
        let kind = self.header("content-type").unwrap_or("");
        if kind.starts_with("multipart/form-data") {
            let boundary = kind
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("boundary="))
                .next()
                .ok_or("the multipart form names no boundary")?
                .trim_matches('"');
            parse_multipart(&self.body, boundary)
        } else if kind.starts_with("application/json") {
            let value: serde_json::Value = serde_json::from_slice(&self.body)
                .map_err(|e| format!("the JSON body is invalid: {e}"))?;
            let mut form = Form::default();
            if let Some(map) = value.as_object() {
                for (k, v) in map {
                    match v {
                        serde_json::Value::Array(items) => {
                            for item in items {
                                form.push(k, &json_text(item));
                            }
                        }
                        other => form.push(k, &json_text(other)),
                    }
                }
            }
            Ok(form)
        } else {
            let mut form = Form::default();
            for (k, v) in form_urlencoded::parse(&self.body) {
                form.push(&k, &v);
            }
            Ok(form)
        }
    }
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn parse_query(raw: &str) -> HashMap<String, String> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[derive(Default)]
pub struct Form {
    fields: Vec<(String, String)>,
    pub files: Vec<Upload>,
}

pub struct Upload {
    pub field: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Form {
    fn push(&mut self, key: &str, value: &str) {
        self.fields.push((key.to_owned(), value.to_owned()));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("the field `{key}` is required"))
    }

    /// An optional `YYYY-MM-DD` field.
    pub fn date(&self, key: &str) -> Result<Option<jiff::civil::Date>, String> {
        self.get(key)
            .map(|d| {
                d.parse()
                    .map_err(|_| format!("`{d}` is not a date (YYYY-MM-DD)"))
            })
            .transpose()
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    pub fn file(&self, field: &str) -> Option<&Upload> {
        self.files
            .iter()
            .find(|f| f.field == field && !f.bytes.is_empty())
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn parse_multipart(body: &[u8], boundary: &str) -> Result<Form, String> {
    let bad = || "the multipart form is malformed".to_owned();
    let delimiter = format!("--{boundary}");
    let mut form = Form::default();
    let mut at = find(body, delimiter.as_bytes(), 0).ok_or_else(bad)? + delimiter.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(form);
        }
        at += 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", at).ok_or_else(bad)?;
        let head = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let content = head_end + 4;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), content).ok_or_else(bad)?;
        let data = &body[content..next];
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .ok_or_else(bad)?;
        let param = |name: &str| {
            disposition
                .split(';')
                .filter_map(|p| p.trim().strip_prefix(&format!("{name}=")))
                .next()
                .map(|v| v.trim_matches('"').to_owned())
        };
        let field = param("name").ok_or_else(bad)?;
        match param("filename") {
            Some(name) => form.files.push(Upload {
                field,
                name,
                bytes: data.to_vec(),
            }),
            None => form.push(&field, &String::from_utf8_lossy(data)),
        }
        at = next + 2 + delimiter.len();
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    fn new(status: StatusCode, mime: &str, body: Vec<u8>) -> Resp {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(mime) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn html(status: StatusCode, html: String) -> Resp {
        Resp::new(status, "text/html; charset=utf-8", html.into_bytes())
    }

    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Resp {
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        Resp::new(status, "application/json", body)
    }

    pub fn text(status: StatusCode, mime: &str, text: String) -> Resp {
        Resp::new(status, mime, text.into_bytes())
    }

    pub fn bytes(mime: &str, body: Vec<u8>) -> Resp {
        Resp::new(StatusCode::OK, mime, body)
    }

    /// A download with a file name (`Content-Disposition: attachment`).
    pub fn attachment(mime: &str, name: &str, body: Vec<u8>) -> Resp {
        let mut resp = Resp::bytes(mime, body);
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            resp.headers.insert(header::CONTENT_DISPOSITION, value);
        }
        resp
    }

    /// 303 See Other: where a form post lands.
    pub fn redirect(to: &str) -> Resp {
        let mut resp = Resp::new(StatusCode::SEE_OTHER, "text/plain", Vec::new());
        if let Ok(value) = HeaderValue::from_str(to) {
            resp.headers.insert(header::LOCATION, value);
        }
        resp
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Resp {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.append(name, value);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"document\"; filename=\"release.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\nbody\r\n--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nwebsite\r\n--XyZ--\r\n";
        let form = parse_multipart(body, "XyZ").unwrap();
        assert_eq!(form.get("csrf"), Some("abc"));
        assert_eq!(form.get("purpose"), Some("website"));
        let file = form.file("document").unwrap();
        assert_eq!(file.name, "release.pdf");
        assert_eq!(file.bytes, b"%PDF-1.4\r\nbody");
        assert!(parse_multipart(b"--XyZ\r\ngarbage", "XyZ").is_err());
    }
}
