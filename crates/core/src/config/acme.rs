//! Automatic certificates (ACME, RFC 8555): the server orders a certificate
//! for its domains from an ACME directory (Let's Encrypt, or any other CA
//! speaking the protocol), answers the CA's challenge itself, serves the
//! certificate through the SNI resolver as soon as it is issued, and renews
//! it before it expires, without a restart.
//!
//! The protocol client is `instant-acme`, driven step by step from here:
//! the certificate resolver (config/sni.rs) stays ours and only asks this
//! module for the issued certificate and for challenge certificates. Two
//! challenges are answered:
//!
//! - TLS-ALPN-01 (RFC 8737), on the HTTPS port: a ClientHello offering the
//!   `acme-tls/1` protocol gets a self-signed certificate (made with rcgen)
//!   carrying the key authorisation's digest, and the connection ends after
//!   the handshake;
//! - HTTP-01, on a plain port of its own: `GET
//!   /.well-known/acme-challenge/<token>` is answered with the key
//!   authorisation; every other request is redirected to HTTPS.
//!
//! The account key, the certificate and its key are written to the `cache`
//! directory with mode 0600 (the directory 0700), and read back at the next
//! start: a cached certificate that covers the domains and has not reached
//! its renewal point is served without a new order. A process that does not
//! order (a worker other than the first) serves what the cache holds and
//! watches the cache for a newer certificate; it reads TLS-ALPN-01
//! challenge certificates from the cache too, since the CA's validation
//! connection may reach any worker.

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body_util::Full;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub(crate) const ALPN_ACME: &[u8] = b"acme-tls/1";

/// Which challenge the CA is asked to validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcmeChallenge {
    /// TLS-ALPN-01 on the HTTPS port (the default).
    #[default]
    TlsAlpn01,
    /// HTTP-01 on a plain port (`http_port`, 80 by default).
    Http01,
}

/// The `tls.acme` option.
#[derive(Debug, Clone)]
pub struct AcmeSource {
    /// DNS names the certificate covers (lower-case).
    pub domains: Vec<String>,
    /// Contact address given to the CA (without `mailto:`).
    pub email: Option<String>,
    /// The directory URL of the CA.
    pub directory: String,
    /// PEM of extra roots trusted for the directory's HTTPS (a test CA).
    pub directory_ca: Option<Vec<u8>>,
    /// Where the account key and the certificates are kept.
    pub cache: PathBuf,
    pub challenge: AcmeChallenge,
    /// With HTTP-01: the plain port answering challenges.
    pub http_port: u16,
    /// An ACME profile to ask for (a CA may offer several lifetimes).
    pub profile: Option<String>,
    /// Renew when this fraction of the certificate's lifetime has passed.
    pub renew_at: f64,
    /// First delay after a failed order; doubled per failure up to an hour.
    pub retry_delay: Duration,
    /// False: never order, only serve (and watch) what the cache holds.
    pub order: bool,
}

/// What the embedder can read of the ACME state (polled for `onError`).
#[derive(Debug, Clone, Default)]
pub struct AcmeStatus {
    /// Failed attempts since the start.
    pub errors: u32,
    pub last_error: Option<String>,
    /// Certificates installed since the start (from the cache or issued).
    pub certificates: u32,
    /// Orders that ended with a certificate.
    pub issued: u32,
    /// Expiry of the certificate served, in seconds since the epoch.
    pub not_after: Option<i64>,
}

/// An installed certificate.
struct Issued {
    key: Arc<CertifiedKey>,
    pem: String,
    not_before: i64,
    not_after: i64,
    /// Modification time of the cache file it came from.
    stamp: Option<SystemTime>,
}

/// State shared by the resolver (read per handshake), the HTTP-01 listener
/// and the ordering task.
pub(crate) struct AcmeState {
    source: AcmeSource,
    cert: ArcSwapOption<Issued>,
    /// TLS-ALPN-01 certificates by domain, while a validation is pending.
    alpn: RwLock<FxHashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 key authorisations by token.
    tokens: RwLock<FxHashMap<String, String>>,
    status: Mutex<AcmeStatus>,
    /// A refused handshake is logged once until a certificate is installed.
    refusal_logged: AtomicBool,
}

impl std::fmt::Debug for AcmeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "AcmeState {{ domains: {:?} }}", self.source.domains)
    }
}

fn acme_error(msg: String) -> Error {
    Error::new(ErrorKind::Tls, msg)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats an error with its sources: the HTTP client's own message
/// ("client error (Connect)") says little without them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

impl AcmeState {
    /// Checks the settings, creates the cache directory and installs a
    /// cached certificate when there is a usable one.
    pub(crate) fn new(source: AcmeSource) -> Result<Arc<Self>> {
        if source.domains.is_empty() {
            return Err(acme_error(
                "tls.acme.domains must list at least one DNS name".into(),
            ));
        }
        create_dir(&source.cache)?;
        let state = Arc::new(Self {
            source,
            cert: ArcSwapOption::empty(),
            alpn: RwLock::default(),
            tokens: RwLock::default(),
            status: Mutex::default(),
            refusal_logged: AtomicBool::new(false),
        });
        state.load_cache();
        Ok(state)
    }

    pub(crate) fn source(&self) -> &AcmeSource {
        &self.source
    }

    pub(crate) fn status(&self) -> AcmeStatus {
        self.status.lock().clone()
    }

    /// True when `name` is one of the ACME domains.
    pub(crate) fn serves(&self, name: &str) -> bool {
        self.source.domains.iter().any(|d| d == name)
    }

    /// The issued certificate, once there is one.
    pub(crate) fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.cert.load().as_ref().map(|i| i.key.clone())
    }

    pub(crate) fn certificate_pem(&self) -> Option<String> {
        self.cert.load().as_ref().map(|i| i.pem.clone())
    }

    /// The TLS-ALPN-01 certificate for `name`: from memory in the ordering
    /// process, else from the cache (another process orders). The file read
    /// happens only on validation handshakes, a few per order.
    pub(crate) fn challenge_cert(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = name?;
        if let Some(k) = self.alpn.read().get(name) {
            return Some(k.clone());
        }
        // Only our own domains: a stranger offering acme-tls/1 costs no
        // file read.
        if self.source.order || !self.serves(name) {
            return None;
        }
        let pem = std::fs::read(self.challenge_path(name)).ok()?;
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .ok()?;
        let key = PrivateKeyDer::from_pem_slice(&pem).ok()?;
        challenge_key(chain, key).ok()
    }

    /// Logs (once until a certificate arrives) why a handshake got no
    /// certificate.
    pub(crate) fn refused(&self, name: Option<&str>) {
        if !self.refusal_logged.swap(true, Ordering::Relaxed) {
            let why = match &self.status.lock().last_error {
                Some(e) => format!("the last attempt failed: {e}"),
                None if self.source.order => "the order is in progress".to_string(),
                None => "waiting for the ordering process to store one in the cache".to_string(),
            };
            eprintln!(
                "httpy: ACME: no certificate issued yet for {}; TLS handshake refused ({why})",
                name.unwrap_or("(no SNI)")
            );
        }
    }

    /// The key authorisation for an HTTP-01 token.
    pub(crate) fn token(&self, token: &str) -> Option<String> {
        self.tokens.read().get(token).cloned()
    }

    fn file(&self, what: &str) -> PathBuf {
        self.source
            .cache
            .join(format!("{}.{what}", self.source.domains[0]))
    }

    fn challenge_path(&self, name: &str) -> PathBuf {
        self.source.cache.join(format!("{name}.challenge.pem"))
    }

    /// Installs the cached certificate if it is newer than the one served,
    /// covers every domain and has not expired. Returns true if it did.
    pub(crate) fn load_cache(&self) -> bool {
        let (crt, key) = (self.file("crt.pem"), self.file("key.pem"));
        let stamp = std::fs::metadata(&crt).and_then(|m| m.modified()).ok();
        if stamp.is_none() {
            return false;
        }
        if let Some(cur) = self.cert.load().as_ref() {
            if cur.stamp == stamp {
                return false;
            }
        }
        let (Ok(chain_pem), Ok(key_pem)) = (std::fs::read(&crt), std::fs::read(&key)) else {
            return false;
        };
        match self.install(&chain_pem, &key_pem, stamp) {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "httpy: ACME: ignoring the cached certificate {}: {}",
                    crt.display(),
                    e.message()
                );
                false
            }
        }
    }

    /// Checks a chain and key and serves them from the next handshake on.
    fn install(&self, chain_pem: &[u8], key_pem: &[u8], stamp: Option<SystemTime>) -> Result<()> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| acme_error(format!("cannot parse the certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| acme_error(format!("cannot parse the key: {e}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| acme_error("no certificate in the chain".into()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| acme_error(format!("cannot parse the certificate: {e}")))?;
        let not_before = parsed.validity().not_before.timestamp();
        let not_after = parsed.validity().not_after.timestamp();
        if not_after <= now_secs() {
            return Err(acme_error(format!(
                "it expired on {}",
                parsed.validity().not_after
            )));
        }
        for d in &self.source.domains {
            super::certs::check_leaf(&chain, Some(d), "the ACME certificate")?;
        }
        let key = super::certs::certified(chain, key, "the ACME certificate", "its key")?;
        self.cert.store(Some(Arc::new(Issued {
            key,
            pem: String::from_utf8_lossy(chain_pem).into_owned(),
            not_before,
            not_after,
            stamp,
        })));
        self.refusal_logged.store(false, Ordering::Relaxed);
        let mut st = self.status.lock();
        st.certificates += 1;
        st.not_after = Some(not_after);
        Ok(())
    }

    /// Seconds until the served certificate should be renewed (0: now).
    fn renew_in(&self) -> u64 {
        let Some(c) = self.cert.load_full() else {
            return 0;
        };
        let life = (c.not_after - c.not_before).max(0) as f64;
        let at = c.not_before + (life * self.source.renew_at) as i64;
        (at - now_secs()).max(0) as u64
    }

    /// Records a failure; the embedder reports it (`onError`).
    fn fail(&self, msg: String) {
        let mut st = self.status.lock();
        st.errors += 1;
        st.last_error = Some(msg);
    }
}

/// Creates `dir` (0700) if needed.
fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            acme_error(format!(
                "cannot create the ACME cache directory {}: {e}",
                dir.display()
            ))
        })
}

/// Writes `data` to `path` with mode 0600, through a temporary file and a
/// rename, so a process reading the cache never sees half a file.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The HTTPS client talking to the directory: rustls with the ring
/// provider (passed explicitly, like every rustls builder of the core), the
/// Mozilla roots plus `directory_ca`.
struct DirectoryClient(
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        BodyWrapper<Bytes>,
    >,
);

impl DirectoryClient {
    fn new(extra_ca: Option<&[u8]>) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca {
            let mut n = 0;
            for c in CertificateDer::pem_slice_iter(pem) {
                let c =
                    c.map_err(|e| acme_error(format!("cannot parse tls.acme.directoryCa: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| acme_error(format!("cannot use tls.acme.directoryCa: {e}")))?;
                n += 1;
            }
            if n == 0 {
                return Err(acme_error(
                    "no certificate found in tls.acme.directoryCa".into(),
                ));
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| acme_error(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self(client))
    }
}

impl HttpClient for DirectoryClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        let fut = self.0.request(req);
        Box::pin(async move {
            // A directory that never answers must not stall renewals.
            match tokio::time::timeout(Duration::from_secs(30), fut).await {
                Ok(Ok(rsp)) => Ok(BytesResponse::from(rsp)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(chain(&e).into())),
                Err(_) => Err(instant_acme::Error::Other(
                    "the ACME directory did not answer within 30 s".into(),
                )),
            }
        })
    }
}

/// Orders, installs and renews for as long as the server runs.
pub(crate) async fn run(state: Arc<AcmeState>, shutdown: CancellationToken) {
    let src = state.source.clone();
    if !src.order {
        // Another process orders: pick up what it stores. A stat every
        // two seconds; the certificate itself is read only when it changed.
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.cancelled() => return,
            }
            state.load_cache();
        }
    }
    let mut account: Option<Account> = None;
    let mut delay = src.retry_delay;
    loop {
        let wait = state.renew_in();
        if wait > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        let attempt = async {
            if account.is_none() {
                account = Some(open_account(&src).await?);
            }
            let acct = account.as_ref().expect("set above");
            order(&state, acct).await
        };
        let result = tokio::select! {
            r = attempt => r,
            _ = shutdown.cancelled() => return,
        };
        state.alpn.write().clear();
        state.tokens.write().clear();
        for d in &src.domains {
            let _ = std::fs::remove_file(state.challenge_path(d));
        }
        match result {
            Ok(()) => {
                delay = src.retry_delay;
                state.status.lock().issued += 1;
            }
            Err(msg) => {
                state.fail(format!(
                    "ordering a certificate for {} from {} failed: {msg} (next attempt in {} s)",
                    src.domains.join(", "),
                    src.directory,
                    delay.as_secs_f64()
                ));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(3600));
            }
        }
    }
}

/// The cached account, or a new one (then cached).
async fn open_account(src: &AcmeSource) -> std::result::Result<Account, String> {
    let http = || {
        DirectoryClient::new(src.directory_ca.as_deref())
            .map(|c| Box::new(c) as Box<dyn HttpClient>)
    };
    let path = src.cache.join("account.json");
    if let Ok(text) = std::fs::read(&path) {
        if let Ok(creds) = serde_json::from_slice::<AccountCredentials>(&text) {
            let stored_for = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("directory")
                        .and_then(|d| d.as_str().map(str::to_string))
                });
            if stored_for.as_deref() == Some(src.directory.as_str()) {
                let http = http().map_err(|e| e.message().to_string())?;
                return Account::builder_with_http(http)
                    .from_credentials(creds)
                    .await
                    .map_err(|e| format!("cannot reach the directory: {}", chain(&e)));
            }
        }
    }
    let contact = src.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let http = http().map_err(|e| e.message().to_string())?;
    let (account, creds) = Account::builder_with_http(http)
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            src.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("cannot create an account: {}", chain(&e)))?;
    let json = serde_json::to_vec(&creds).map_err(|e| e.to_string())?;
    write_private(&path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(account)
}

/// The TLS-ALPN-01 certificate for `domain`: self-signed, naming the
/// domain, with the critical acmeIdentifier extension holding the SHA-256
/// of the key authorisation (RFC 8737 §3). Returns it and its PEM.
fn alpn_certificate(
    domain: &str,
    digest: &[u8],
) -> std::result::Result<(Arc<CertifiedKey>, String), String> {
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
    Ok((challenge_key(vec![cert.der().clone()], der)?, pem))
}

/// A challenge certificate with its key. Not through `certified`: its
/// consistency check parses the certificate with webpki, which refuses the
/// critical acmeIdentifier extension it does not know.
fn challenge_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> std::result::Result<Arc<CertifiedKey>, String> {
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("challenge key unusable: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// One order: challenges answered, certificate fetched, cached, installed.
async fn order(state: &AcmeState, account: &Account) -> std::result::Result<(), String> {
    let src = &state.source;
    let ids: Vec<Identifier> = src
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut new = NewOrder::new(&ids);
    if let Some(p) = &src.profile {
        new = new.profile(p);
    }
    let api = |what: &str, e: instant_acme::Error| format!("{what}: {}", chain(&e));
    let mut order = account
        .new_order(&new)
        .await
        .map_err(|e| api("the CA refused the order", e))?;
    let kind = match src.challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let mut auths = order.authorizations();
    while let Some(a) = auths.next().await {
        let mut authz = a.map_err(|e| api("cannot read an authorization", e))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                ))
            }
        }
        let domain = authz.identifier().to_string();
        let mut ch = authz
            .challenge(kind.clone())
            .ok_or_else(|| format!("the CA offers no {kind:?} challenge for {domain}"))?;
        let key_auth = ch.key_authorization();
        match src.challenge {
            AcmeChallenge::TlsAlpn01 => {
                let (ck, pem) = alpn_certificate(&domain, key_auth.digest().as_ref())?;
                state.alpn.write().insert(domain.clone(), ck);
                // For sibling processes that may receive the validation.
                let path = state.challenge_path(&domain);
                write_private(&path, pem.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            AcmeChallenge::Http01 => {
                state
                    .tokens
                    .write()
                    .insert(ch.token.clone(), key_auth.as_str().to_string());
            }
        }
        ch.set_ready()
            .await
            .map_err(|e| api("cannot start the validation", e))?;
    }
    let retry = RetryPolicy::new().timeout(Duration::from_secs(60));
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(|e| api("waiting for the validation", e))?;
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order, status).await);
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| api("finalizing the order", e))?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| api("downloading the certificate", e))?;
    let (crt, key) = (state.file("crt.pem"), state.file("key.pem"));
    // The key first: a reader that sees the new chain finds its key.
    write_private(&key, key_pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", key.display()))?;
    write_private(&crt, chain_pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", crt.display()))?;
    let stamp = std::fs::metadata(&crt).and_then(|m| m.modified()).ok();
    state
        .install(chain_pem.as_bytes(), key_pem.as_bytes(), stamp)
        .map_err(|e| format!("the issued certificate is unusable: {}", e.message()))?;
    eprintln!(
        "httpy: ACME: certificate issued for {} (cached in {})",
        src.domains.join(", "),
        src.cache.display()
    );
    Ok(())
}

/// The CA's reasons for an order that did not become ready: the order's
/// error, else each failed challenge's.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    if let Some(p) = &order.state().error {
        reasons.push(p.to_string());
    }
    let mut auths = order.authorizations();
    while let Some(Ok(a)) = auths.next().await {
        let domain = a.identifier().to_string();
        for c in &a.challenges {
            if let Some(p) = &c.error {
                reasons.push(format!("{domain}: {p}"));
            }
        }
    }
    if reasons.is_empty() {
        format!("the order ended {status:?}")
    } else {
        format!("the order ended {status:?}: {}", reasons.join("; "))
    }
}

/// Serves HTTP-01 challenges on `listener` until shutdown; any other
/// request is redirected to HTTPS on `https_port`.
pub(crate) async fn serve_http01(
    state: Arc<AcmeState>,
    listener: tokio::net::TcpListener,
    https_port: u16,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    // Out of descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let rsp = http01_answer(&state, &req, https_port);
                    async move { Ok::<_, std::convert::Infallible>(rsp) }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

fn http01_answer<B>(
    state: &AcmeState,
    req: &http::Request<B>,
    https_port: u16,
) -> http::Response<Full<Bytes>> {
    let reply = |status: u16, body: String| {
        let mut r = http::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::NOT_FOUND);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        r
    };
    let path = req.uri().path();
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        return match state.token(token) {
            Some(k) => reply(200, k),
            None => reply(404, "unknown ACME challenge token\n".into()),
        };
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(h, |(n, _)| n)
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        });
    let Some(host) = host else {
        return reply(400, "a Host header is needed to redirect to HTTPS\n".into());
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut r = reply(308, String::new());
    if let Ok(loc) = http::HeaderValue::from_str(&format!("https://{host}{port}{pq}")) {
        r.headers_mut().insert(http::header::LOCATION, loc);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &Path) -> AcmeSource {
        AcmeSource {
            domains: vec!["a.test".into()],
            email: None,
            directory: "https://127.0.0.1:1/dir".into(),
            directory_ca: None,
            cache: dir.to_path_buf(),
            challenge: AcmeChallenge::TlsAlpn01,
            http_port: 80,
            profile: None,
            renew_at: 2.0 / 3.0,
            retry_delay: Duration::from_secs(1),
            order: true,
        }
    }

    #[test]
    fn cache_files_are_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("acme");
        let state = AcmeState::new(source(&cache)).unwrap();
        assert!(state.current().is_none());
        assert_eq!(
            std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let made = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
        write_private(
            &state.file("key.pem"),
            made.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        write_private(&state.file("crt.pem"), made.cert.pem().as_bytes()).unwrap();
        let mode = std::fs::metadata(state.file("crt.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = AcmeState::new(source(&cache)).unwrap();
        assert!(
            again.current().is_some(),
            "a valid cached certificate is served at start"
        );
        assert!(again.renew_in() > 0, "and not renewed at once");
        assert!(!again.load_cache(), "unchanged file: not read again");
    }

    #[test]
    fn cached_certificate_for_other_names_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = AcmeState::new(source(dir.path())).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["b.test".to_string()]).unwrap();
        write_private(
            &state.file("key.pem"),
            made.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        write_private(&state.file("crt.pem"), made.cert.pem().as_bytes()).unwrap();
        assert!(!state.load_cache());
        assert!(state.current().is_none());
        assert_eq!(state.renew_in(), 0);
    }

    #[test]
    fn challenge_certificate_carries_the_digest_and_loads() {
        // webpki refuses the critical acmeIdentifier extension, so a
        // consistency check through it would reject every challenge.
        let digest = [7u8; 32];
        let (ck, pem) = alpn_certificate("a.test", &digest).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&ck.cert[0]).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        assert!(ext.value.ends_with(&digest));
        let dir = tempfile::tempdir().unwrap();
        let mut src = source(dir.path());
        src.order = false;
        let state = AcmeState::new(src).unwrap();
        assert!(state.challenge_cert(Some("a.test")).is_none());
        std::fs::write(state.challenge_path("a.test"), pem).unwrap();
        let read = state
            .challenge_cert(Some("a.test"))
            .expect("read from the cache");
        assert_eq!(read.cert[0], ck.cert[0]);
    }

    #[test]
    fn http01_answers_tokens_and_redirects_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let state = AcmeState::new(source(dir.path())).unwrap();
        state
            .tokens
            .write()
            .insert("tok".into(), "tok.thumb".into());
        let get = |uri: &str, host: &str| {
            let req = http::Request::get(uri)
                .header("host", host)
                .body(())
                .unwrap();
            http01_answer(&state, &req, 8443)
        };
        assert_eq!(
            get("/.well-known/acme-challenge/tok", "a.test").status(),
            200
        );
        assert_eq!(
            get("/.well-known/acme-challenge/nope", "a.test").status(),
            404
        );
        let r = get("/x?y=1", "a.test:80");
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()["location"], "https://a.test:8443/x?y=1");
        assert_eq!(get("/x", "bad host\"").status(), 400);
    }
}
