//! Tests of certificate handling and of both servers, over real sockets on 127.0.0.1.

use super::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

struct Pair {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls/console.crt");
    let key = dir.path().join("tls/console.key");
    Pair {
        _dir: dir,
        cert,
        key,
    }
}

fn names() -> Vec<String> {
    vec![
        "photos.example".to_owned(),
        " ".to_owned(),
        "LOCALHOST".to_owned(),
    ]
}

fn generated() -> (Pair, TlsIdentity) {
    let p = pair();
    let identity = load_or_generate(&p.cert, &p.key, &names()).unwrap();
    (p, identity)
}

#[test]
fn generates_then_loads_the_same_certificate() {
    let (p, first) = generated();
    assert!(first.generated);
    assert_eq!(first.cert_path, p.cert);
    assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
    assert!(
        first.fingerprint.split(':').all(|pair| pair.len() == 2
            && pair
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())),
        "{}",
        first.fingerprint
    );
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(mode(&p.key), 0o600);
    assert!(!p.cert.with_file_name(".console.crt.tmp").exists());
    assert_eq!(
        first.config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );

    let again = load_or_generate(&p.cert, &p.key, &[]).unwrap();
    assert!(!again.generated);
    assert_eq!(again.fingerprint, first.fingerprint);
    let der = CertificateDer::from_pem_file(&p.cert).unwrap();
    assert_eq!(fingerprint(&der), first.fingerprint);
}

#[test]
fn fingerprint_format() {
    // SHA-256 of the empty string.
    assert!(fingerprint(b"").starts_with("E3:B0:C4:42:98:FC:1C:14:"));
}

#[test]
fn one_file_of_the_pair_is_an_error_naming_the_other() {
    let (p, _) = generated();
    fs::remove_file(&p.key).unwrap();
    let err = load_or_generate(&p.cert, &p.key, &[]).unwrap_err();
    assert!(
        matches!(&err, TlsError::Missing { missing, .. } if *missing == p.key),
        "{err}"
    );
    assert!(err.to_string().contains("console.key is missing"), "{err}");
    fs::remove_file(&p.cert).unwrap();
    fs::write(&p.key, "x").unwrap();
    let err = load_or_generate(&p.cert, &p.key, &[]).unwrap_err();
    assert!(
        matches!(&err, TlsError::Missing { missing, .. } if *missing == p.cert),
        "{err}"
    );
}

#[test]
fn bad_files_are_named_with_the_problem() {
    let (p, _) = generated();
    let cert_pem = fs::read_to_string(&p.cert).unwrap();
    let key_pem = fs::read_to_string(&p.key).unwrap();

    fs::write(&p.cert, "hello").unwrap();
    let err = load_or_generate(&p.cert, &p.key, &[]).unwrap_err();
    assert!(
        matches!(&err, TlsError::NotPem { path } if *path == p.cert),
        "{err}"
    );

    fs::write(&p.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let err = load_or_generate(&p.cert, &p.key, &[]).unwrap_err();
    assert!(
        matches!(&err, TlsError::BadPem { path, .. } if *path == p.cert),
        "{err}"
    );

    fs::write(&p.cert, &key_pem).unwrap();
    let err = load_or_generate(&p.cert, &p.key, &[]).unwrap_err();
    assert!(
        matches!(&err, TlsError::NoCertificate { path } if *path == p.cert),
        "{err}"
    );

    fs::write(&p.cert, &cert_pem).unwrap();
    fs::write(&p.key, &cert_pem).unwrap();
    let err = load_or_generate(&p.cert, &p.key, &[]).unwrap_err();
    assert!(
        matches!(&err, TlsError::NoPrivateKey { path } if *path == p.key),
        "{err}"
    );

    let (other, _) = generated();
    fs::copy(&other.key, &p.key).unwrap();
    let err = load_or_generate(&p.cert, &p.key, &[]).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().starts_with("the private key in "), "{err}");
}

/// Spawns `serve` with a filter that reports the peer address, on 127.0.0.1:0.
async fn spawn_https(
    identity: &TlsIdentity,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = warp::path("hello")
        .and(peer_addr())
        .and(warp::addr::remote())
        .map(
            |peer: Option<SocketAddr>, warp_remote: Option<SocketAddr>| {
                format!("peer={:?} warp={:?}", peer.map(|a| a.ip()), warp_remote)
            },
        );
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        routes,
        listener,
        identity.config.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop, server)
}

fn client(cert: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn serves_https_with_the_generated_certificate() {
    let (p, identity) = generated();
    let (addr, stop, server) = spawn_https(&identity).await;

    // HTTP/1.1, by the configured name, with the peer address passed through.
    let connector = client(&p.cert, &[b"http/1.1"]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("photos.example").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /hello HTTP/1.1\r\nHost: photos.example\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    // Our extension carries the address; warp's own filter cannot see it here.
    assert!(
        response.ends_with("peer=Some(127.0.0.1) warp=None"),
        "{response}"
    );

    // HTTP/2 is offered by ALPN, and the IP address SAN is valid too.
    let connector = client(&p.cert, &[b"h2", b"http/1.1"]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);

    // A name not in the certificate is refused by the client.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("elsewhere.example").unwrap();
    assert!(connector.connect(name, tcp).await.is_err());

    // Plain HTTP on the TLS port gets nothing.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut junk = Vec::new();
    let _ = tcp.read_to_end(&mut junk).await;
    assert!(!String::from_utf8_lossy(&junk).contains("peer="));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

async fn plain_request(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn plain_http_only_redirects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_redirect(listener, 8443, async move {
        let _ = stopped.await;
    }));

    let cases = [
        (
            "POST /people/7?page=2&q=a%20b HTTP/1.1\r\nHost: photos.example:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            "https://photos.example:8443/people/7?page=2&q=a%20b",
        ),
        ("GET / HTTP/1.0\r\n\r\n", "https://localhost:8443/"),
        (
            "GET /x HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
            "https://[::1]:8443/x",
        ),
        (
            "GET /x HTTP/1.1\r\nHost: bad host\r\nConnection: close\r\n\r\n",
            "https://localhost:8443/x",
        ),
    ];
    for (request, location) in cases {
        let response = plain_request(addr, request).await;
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 308 Permanent Redirect\r\n")
                || head.starts_with("HTTP/1.0 308"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\nlocation: {location}\r\n")),
            "{head}"
        );
        assert!(head.contains("\r\ncontent-length: 0"), "{head}");
        assert_eq!(body, "");
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn redirect_to_port_443_omits_the_port() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let filter = redirect_filter(443);
    let request = Request::get("/a?b=c")
        .header("host", "photos.example")
        .body(String::new())
        .unwrap();
    let mut service = warp::service(filter);
    let response = runtime
        .block_on(tower_service::Service::call(&mut service, request))
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        "https://photos.example/a?b=c"
    );
}
