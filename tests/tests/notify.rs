//! The notification transport against real servers: SMTP through aiosmtpd
//! (STARTTLS, AUTH, a CA of its own), the webhook through a small HTTP server
//! in this test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use consentry::notify::{
    Mail, NotifyError, SmtpConfig, SmtpSecurity, WebhookConfig, post_webhook, send_mail,
};
use consentry_tests::require_smtp_server;
use consentry_tests::smtp::SmtpServer;

const USER: &str = "reminder-bot";
const PASSWORD: &str = "c0rrect-h0rse";

fn smtp_config(server: &SmtpServer, dir: &Path, password: &str) -> SmtpConfig {
    let password_file = dir.join("smtp-password");
    // A trailing newline, as an editor or `echo` leaves it.
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: server.port(),
        security: SmtpSecurity::StartTls,
        username: Some(USER.into()),
        password_file: Some(password_file),
        from: "consentry <photos@example.org>".into(),
        to: vec![
            "dpo@example.org".into(),
            "Zoë Jansen <zoe@example.org>".into(),
        ],
        ca_file: Some(server.ca_pem().to_owned()),
        timeout_secs: 10,
    }
}

fn start(auth: Option<(&str, &str)>) -> SmtpServer {
    SmtpServer::start(auth).expect("start the SMTP test server")
}

#[test]
fn starttls_with_auth_delivers_to_every_recipient() {
    require_smtp_server!();
    let server = start(Some((USER, PASSWORD)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = smtp_config(&server, dir.path(), PASSWORD);
    cfg.check().unwrap();
    let mail = Mail {
        subject: "Toestemming verloopt: Zoë".into(),
        text: "Zoë — verloopt 31 maart\nFoto's: 3\n".into(),
    };
    send_mail(&cfg, &mail).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let received = server.wait_for(1, Duration::from_secs(10));
    assert_eq!(received.len(), 1, "{}", server.log());
    let got = &received[0];
    assert_eq!(got.from, "photos@example.org");
    assert_eq!(got.to, ["dpo@example.org", "zoe@example.org"]);
    assert_eq!(got.subject, mail.subject);
    assert_eq!(got.body, mail.text);
}

#[test]
fn wrong_password_says_authentication_was_refused() {
    require_smtp_server!();
    let server = start(Some((USER, PASSWORD)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = smtp_config(&server, dir.path(), "wrong");
    let err = send_mail(
        &cfg,
        &Mail {
            subject: "x".into(),
            text: "y".into(),
        },
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, NotifyError::SmtpAuth { .. }),
        "{err:?}: {message}"
    );
    assert!(message.contains("authentication refused"), "{message}");
    assert!(
        message.contains("reminders.smtp.password_file"),
        "{message}"
    );
    assert!(!message.contains("wrong"), "the password leaked: {message}");
    assert!(!err.is_transient());
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.messages().is_empty());
}

#[test]
fn a_closed_port_is_a_connect_error_naming_host_and_port() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cfg = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::StartTls,
        username: None,
        password_file: None,
        from: "photos@example.org".into(),
        to: vec!["dpo@example.org".into()],
        ca_file: None,
        timeout_secs: 5,
    };
    let err = send_mail(
        &cfg,
        &Mail {
            subject: "x".into(),
            text: "y".into(),
        },
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, NotifyError::SmtpConnect { .. }),
        "{err:?}: {message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(err.is_transient());
}

#[test]
fn implicit_tls_against_a_starttls_server_fails_fast_and_says_why() {
    require_smtp_server!();
    let server = start(None);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smtp_config(&server, dir.path(), PASSWORD);
    cfg.username = None;
    cfg.password_file = None;
    cfg.security = SmtpSecurity::Tls;
    cfg.timeout_secs = 3;
    let started = Instant::now();
    let err = send_mail(
        &cfg,
        &Mail {
            subject: "x".into(),
            text: "y".into(),
        },
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(message.contains("TLS failed"), "{message}");
    assert!(message.contains("security = \"starttls\""), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port())),
        "{message}"
    );
}

#[test]
fn an_untrusted_certificate_is_a_tls_error_pointing_at_ca_file() {
    require_smtp_server!();
    let server = start(None);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smtp_config(&server, dir.path(), PASSWORD);
    cfg.username = None;
    cfg.password_file = None;
    cfg.ca_file = None;
    let err = send_mail(
        &cfg,
        &Mail {
            subject: "x".into(),
            text: "y".into(),
        },
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, NotifyError::SmtpTls { .. }), "{message}");
    assert!(message.contains("reminders.smtp.ca_file"), "{message}");
    assert!(server.messages().is_empty());

    // The same server, trusted through ca_file and without login, delivers.
    cfg.ca_file = Some(server.ca_pem().to_owned());
    send_mail(
        &cfg,
        &Mail {
            subject: "plain".into(),
            text: "ascii only".into(),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let received = server.wait_for(1, Duration::from_secs(10));
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, "ascii only");
}

/// A request as the webhook server saw it.
struct Request {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves one HTTP request on 127.0.0.1 with `status` and `reply`; returns
/// the port and what was received.
fn http_server_once(status: &'static str, reply: &'static str) -> (u16, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("a content-length header");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
        stream.flush().unwrap();
        tx.send(Request {
            request_line: request_line.trim_end().to_owned(),
            headers,
            body,
        })
        .unwrap();
    });
    (port, rx)
}

fn payload() -> serde_json::Value {
    serde_json::json!({
        "kind": "consent-expiring",
        "subject": "Zoë — verloopt 31 maart",
        "items": [{"person": "Zoë Jansen", "expires": "2026-03-31", "photos": 3}],
    })
}

#[test]
fn webhook_posts_the_exact_json() {
    let (port, rx) = http_server_once("204 No Content", "");
    let cfg = WebhookConfig {
        url: format!("http://127.0.0.1:{port}/hooks/consentry?token=abc"),
        ca_file: None,
        timeout_secs: 5,
    };
    post_webhook(&cfg, &payload()).unwrap();
    let request = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        request.request_line,
        "POST /hooks/consentry?token=abc HTTP/1.1"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.body, serde_json::to_vec(&payload()).unwrap());
    let parsed: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(parsed, payload());
}

#[test]
fn webhook_error_status_is_an_error_naming_it() {
    let (port, rx) = http_server_once("500 Internal Server Error", "boom: database down");
    let cfg = WebhookConfig {
        url: format!("http://127.0.0.1:{port}/hooks/consentry?token=secret-token"),
        ca_file: None,
        timeout_secs: 5,
    };
    let err = post_webhook(&cfg, &payload()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, NotifyError::WebhookStatus { status: 500, .. }),
        "{message}"
    );
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(message.contains("boom: database down"), "{message}");
    assert!(
        !message.contains("secret-token"),
        "the URL's token leaked: {message}"
    );
    assert!(err.is_transient());
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
}

#[test]
fn webhook_to_a_closed_port_is_a_connect_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cfg = WebhookConfig {
        url: format!("http://127.0.0.1:{port}/hook"),
        ca_file: None,
        timeout_secs: 5,
    };
    let err = post_webhook(&cfg, &payload()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, NotifyError::WebhookConnect { .. }),
        "{err:?}: {message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
}
