//! HTTPS for the console: the certificate, the TLS accept loop, and the plain-HTTP redirect.
//!
//! warp 0.4 has no TLS of its own, so [`serve`] accepts TCP connections,
//! completes the TLS handshake with rustls (ring provider, TLS 1.2 and 1.3,
//! ALPN `h2` and `http/1.1`) and hands each connection to hyper's HTTP/1 + HTTP/2
//! server running `warp::service(filter)`. Each request carries the client's
//! socket address as a request extension, read with [`peer_addr`]; warp's own
//! `warp::addr::remote()` is always `None` here, because only `warp::serve`
//! can fill it. Clients cannot forge the extension: it is not a header.
//!
//! [`load_or_generate`] reads a PEM certificate chain and key, or, when neither
//! file exists, makes a self-signed ECDSA P-256 certificate for the configured
//! names plus `localhost`, `127.0.0.1` and `::1`, and writes both files
//! (key mode 0600, each through a temporary file and a rename). Its
//! [`TlsIdentity::fingerprint`] is what an administrator compares in the browser.
//!
//! [`serve_redirect`] answers plain HTTP on another port with `308 Permanent
//! Redirect` to the HTTPS URL and an empty body, whatever was asked: plain HTTP
//! never carries console data.
//!
//! Failure modes: [`TlsError`] names the file and what is wrong with it (unreadable,
//! not PEM, no certificate, no key, key and certificate do not match, only one of
//! the pair present, cannot write). A failed or slow handshake (over
//! [`HANDSHAKE_TIMEOUT`]) or a broken connection only ends that connection, logged at
//! debug level. Accept errors (e.g. out of file descriptors) are logged and retried.

use std::convert::Infallible;
use std::fmt;
use std::fs;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use warp::http::uri::Authority;
use warp::http::{Request, Uri};
use warp::{Filter, Reply};

/// A client has this long to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/1 client has this long to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After shutdown, open connections get this long to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Validity of a generated certificate (the most browsers accepted for public CAs).
const GENERATED_VALIDITY: Duration = Duration::from_secs(825 * 24 * 60 * 60);
/// Names always in a generated certificate, after the configured ones.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The console's TLS setup, ready for [`serve`].
#[derive(Clone)]
pub struct TlsIdentity {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:…` (32 pairs).
    pub fingerprint: String,
    /// Whether the certificate was generated just now (announce the fingerprint).
    pub generated: bool,
    pub cert_path: PathBuf,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("generated", &self.generated)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// Why the certificate or key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a PEM file (expected -----BEGIN …----- sections)", path.display())]
    NotPem { path: PathBuf },
    #[error("{} is not valid PEM: {detail}", path.display())]
    BadPem { path: PathBuf, detail: String },
    #[error("{} holds no certificate (expected -----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no private key (expected PKCS#8, PKCS#1 or SEC1 PEM)", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate {} with the key {} was refused: {source}", cert.display(), key.display())]
    Refused {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "{} is missing but {} exists: provide both, or remove {} to have a new pair generated",
        missing.display(), present.display(), present.display()
    )]
    Missing { missing: PathBuf, present: PathBuf },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Loads the certificate chain from `cert` and the key from `key`, or, if
/// neither file exists, generates a self-signed pair for `names` and writes it there.
pub fn load_or_generate(
    cert: &Path,
    key: &Path,
    names: &[String],
) -> Result<TlsIdentity, TlsError> {
    let exists = |path: &Path| {
        path.try_exists().map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let (chain, key_der, generated) = match (exists(cert)?, exists(key)?) {
        (true, true) => {
            let (chain, key_der) = load(cert, key)?;
            (chain, key_der, false)
        }
        (false, false) => {
            let (chain, key_der) = generate(cert, key, names)?;
            (chain, key_der, true)
        }
        (true, false) => return Err(missing(key, cert)),
        (false, true) => return Err(missing(cert, key)),
    };
    let fingerprint = fingerprint(&chain[0]);
    let config = server_config(chain, key_der).map_err(|source| match source {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }
        }
        source => TlsError::Refused {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        },
    })?;
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint,
        generated,
        cert_path: cert.to_owned(),
    })
}

fn missing(missing: &Path, present: &Path) -> TlsError {
    TlsError::Missing {
        missing: missing.to_owned(),
        present: present.to_owned(),
    }
}

type Chain = Vec<CertificateDer<'static>>;

fn server_config(chain: Chain, key: PrivateKeyDer<'static>) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// SHA-256 of `der` as upper-case hex pairs joined by `:`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let pairs: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

/// Every PEM section of `path`, or an error naming it.
fn pem_sections(path: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|err| TlsError::BadPem {
            path: path.to_owned(),
            detail: err.to_string(),
        })?;
    if sections.is_empty() {
        return Err(TlsError::NotPem {
            path: path.to_owned(),
        });
    }
    Ok(sections)
}

fn load(cert: &Path, key: &Path) -> Result<(Chain, PrivateKeyDer<'static>), TlsError> {
    let chain: Chain = pem_sections(cert)?
        .into_iter()
        .filter_map(|(kind, der)| CertificateDer::from_pem(kind, der))
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    warn_if_readable_by_others(key);
    let key_der = pem_sections(key)?
        .into_iter()
        .find_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der))
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: key.to_owned(),
        })?;
    Ok((chain, key_der))
}

/// A private key others can read is worth a warning, not a refusal: the
/// administrator may have reasons (a group shared with a proxy).
fn warn_if_readable_by_others(key: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = fs::metadata(key)
        && meta.permissions().mode() & 0o007 != 0
    {
        log::warn!(
            "the console's private key {} is readable by every user; `chmod 600` it",
            key.display()
        );
    }
}

/// Makes a self-signed certificate and writes it and its key to `cert` and `key`.
fn generate(
    cert: &Path,
    key: &Path,
    names: &[String],
) -> Result<(Chain, PrivateKeyDer<'static>), TlsError> {
    let mut sans: Vec<String> = Vec::new();
    let wanted = names.iter().map(|n| n.trim()).chain(LOCAL_NAMES);
    for name in wanted.filter(|n| !n.is_empty()) {
        if !sans.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            sans.push(name.to_owned());
        }
    }
    let mut params = rcgen::CertificateParams::new(sans)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "consentry console");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    // A day of slack for clients whose clocks are behind.
    params.not_before = epoch + since_epoch.saturating_sub(Duration::from_secs(24 * 60 * 60));
    params.not_after = epoch + since_epoch + GENERATED_VALIDITY;

    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let certificate = params.self_signed(&key_pair)?;

    // The key first: a crash in between leaves a lone key, which is refused
    // with a message naming the missing certificate, never a lone certificate
    // whose key was lost.
    write_atomic(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(cert, certificate.pem().as_bytes(), 0o644)?;

    let key_der = PrivatePkcs8KeyDer::from(key_pair.serialize_der()).into();
    Ok((vec![certificate.der().clone()], key_der))
}

/// Writes `contents` to `path` via a temporary file in the same directory and a
/// rename, so `path` is never seen half-written. Creates missing directories (0700).
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let failed = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    // A leftover from a crash may have looser permissions; never reuse it.
    match fs::remove_file(&temp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(failed(err)),
        _ => {}
    }
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(failed(err));
    }
    Ok(())
}

/// The client's address as the accept loop saw it, in each request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerAddr(SocketAddr);

/// The client's socket address, for requests served by [`serve`] or [`serve_redirect`]
/// (`None` elsewhere, e.g. under `warp::test`). Use it for throttling and audit logs.
pub fn peer_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|peer: Option<PeerAddr>| peer.map(|PeerAddr(addr)| addr))
}

/// A tower service that puts the connection's [`PeerAddr`] into each request.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: PeerAddr,
}

impl<S, B> tower_service::Service<Request<B>> for WithPeer<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        self.inner.call(request)
    }
}

/// Serves `filter` over HTTPS on `listener` until `shutdown` resolves.
///
/// Then it stops accepting, asks open connections to finish their current
/// requests, and returns once they have, or after a grace period of 10 s.
pub async fn serve<F>(
    filter: F,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let acceptor = TlsAcceptor::from(tls);
    let handshake = move |stream: TcpStream, peer: SocketAddr| {
        let acceptor = acceptor.clone();
        async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(err)) => {
                    log::debug!("TLS handshake with {peer} failed: {err}");
                    None
                }
                Err(_) => {
                    log::debug!("TLS handshake with {peer} timed out");
                    None
                }
            }
        }
    };
    accept_loop(filter, listener, shutdown, handshake).await;
}

/// Answers plain HTTP on `listener` with a redirect to HTTPS on `https_port`,
/// until `shutdown` resolves.
pub async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let plain = |stream: TcpStream, _peer: SocketAddr| std::future::ready(Some(stream));
    accept_loop(redirect_filter(https_port), listener, shutdown, plain).await;
}

/// Every request, whatever its method or path, gets `308` to the same path and
/// query over HTTPS, with an empty body.
fn redirect_filter(
    https_port: u16,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let host = warp::host::optional().or(warp::any().map(|| None)).unify();
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    host.and(warp::path::full()).and(query).map(
        move |authority: Option<Authority>, path: warp::path::FullPath, query: String| {
            let host = authority.as_ref().map_or("localhost", Authority::host);
            let port = match https_port {
                443 => String::new(),
                port => format!(":{port}"),
            };
            let query = if query.is_empty() {
                query
            } else {
                format!("?{query}")
            };
            let location = format!("https://{host}{port}{}{query}", path.as_str());
            let location = location
                .parse::<Uri>()
                .or_else(|_| format!("https://localhost{port}/").parse::<Uri>())
                .unwrap_or_else(|_| Uri::from_static("https://localhost/"));
            warp::redirect::permanent(location).into_response()
        },
    )
}

/// Accepts connections until `shutdown`; each gets `handshake`, then HTTP/1 or
/// HTTP/2 with `filter`. Returns when the open connections have finished or the
/// grace period is over.
async fn accept_loop<F, H, Fut, Io>(
    filter: F,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    handshake: H,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
    H: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = Option<Io>> + Send + 'static,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let secured = handshake(stream, peer);
        let filter = filter.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            if let Some(io) = secured.await {
                serve_connection(io, peer, filter, watcher).await;
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        log::debug!("console connections still open after {SHUTDOWN_GRACE:?}; leaving them");
    }
}

async fn serve_connection<Io, F>(io: Io, peer: SocketAddr, filter: F, watcher: Watcher)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let service = WithPeer {
        inner: warp::service(filter),
        peer: PeerAddr(peer),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(err) = watcher.watch(connection).await {
        log::debug!("console connection with {peer} ended: {err}");
    }
}

/// Connection-level accept errors are the client's problem; others (such as
/// running out of file descriptors) get a pause so the loop does not spin.
async fn accept_failed(err: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        return;
    }
    log::warn!("cannot accept a console connection: {err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests;
