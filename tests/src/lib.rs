//! Test harness: a router on free loopback ports with a temporary SQLite
//! file, and [`Phone`], a small SIP user agent that writes and reads the
//! wire format itself (it shares no parsing code with the router).

#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod rtp;

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use switchboard::config::Config;
use switchboard::directory::provision::{self, NewDevice, NewEmployee, NewHuntGroup, NewTenant};
use switchboard::directory::RingStrategy;
use switchboard::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The test tenant's domain.
pub const DOMAIN: &str = "test.example";

/// A router under test.
pub struct TestRouter {
    /// The running router.
    pub running: Running,
    /// Keeps the database file alive.
    pub dir: tempfile::TempDir,
    /// The router's database: a file in `dir`, or a PostgreSQL database
    /// of its own when `SWITCHBOARD_TEST_POSTGRES` is set.
    pub database_url: String,
    /// Drops a PostgreSQL database when the test ends.
    _database: Option<DropDatabase>,
    /// Keeps the TLS certificate files alive (the router watches them).
    certs: Option<tempfile::TempDir>,
}

/// The environment variable that runs the suite on PostgreSQL: a URL of a
/// server where the tests may create databases (`.ci/postgres.sh` starts a
/// throwaway one).
pub const POSTGRES_ENV: &str = "SWITCHBOARD_TEST_POSTGRES";

/// A fresh, empty database for one router: an SQLite file in `dir`, or,
/// when [`POSTGRES_ENV`] is set, a new PostgreSQL database on that server.
pub async fn test_database(dir: &std::path::Path) -> String {
    let Ok(server) = std::env::var(POSTGRES_ENV) else {
        return format!("sqlite://{}", dir.join("test.db").display());
    };
    fresh_postgres_database(&server).await
}

/// A PostgreSQL server for tests that need one whatever the backend of the
/// run: [`POSTGRES_ENV`] if set, else a throwaway server started once per
/// test process by `.ci/postgres.sh` and stopped, by a watchdog, when the
/// process ends. Panics, saying what to install, if PostgreSQL is missing.
pub async fn postgres_server() -> String {
    static SERVER: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var(POSTGRES_ENV) {
                return url;
            }
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let out = std::process::Command::new("bash")
                .arg(root.join(".ci/postgres.sh"))
                .output()
                .expect("run .ci/postgres.sh");
            assert!(
                out.status.success(),
                "no PostgreSQL for the cluster tests (apt-get install postgresql, as .ci/run does): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let value = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("export {key}=")))
                    .unwrap()
                    .to_owned()
            };
            let (url, dir) = (
                value("SWITCHBOARD_TEST_POSTGRES"),
                value("SWITCHBOARD_TEST_POSTGRES_DIR"),
            );
            // Stops the server we started once this process is gone. Not
            // waited for: it must outlive us (init reaps it).
            #[allow(clippy::zombie_processes)]
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash {script} stop {dir}",
                    pid = std::process::id(),
                    script = root.join(".ci/postgres.sh").display(),
                ))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            url
        })
        .await
        .clone()
}

/// Creates a PostgreSQL database with a unique name on `server` and
/// returns its URL.
pub async fn fresh_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("sb_{}_{}_{}", std::process::id(), n, rand::random::<u32>());
    let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Drops a test's PostgreSQL database, and with it the connections of the
/// routers that used it: a router a test drops without `shutdown` keeps its
/// pool (its tasks end with the test's runtime, the pool's sockets do not),
/// and two hundred tests would exhaust the server's connection slots.
struct DropDatabase {
    server: String,
    url: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let Some((_, name)) = self.url.rsplit_once('/') else {
            return;
        };
        let (server, sql) = (
            self.server.clone(),
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        // Its own thread and runtime: the test's runtime may be ending.
        let _ = std::thread::spawn(move || {
            use sqlx::Connection;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::query(&sql).execute(&mut c).await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

/// Config for tests: loopback, free ports, short ring times.
pub fn test_config(database_url: &str) -> Config {
    let mut c = Config::default();
    c.sip.listen = "127.0.0.1:0".parse().unwrap();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.database_url = database_url.to_owned();
    c.seed_demo = false;
    c.sip.default_ring_secs = 3;
    c.sip.no_response_secs = 2;
    c.admin_token = Some("test-admin-token".into());
    // Tests start dozens of routers at once on two cores: a wall-clock
    // deadline of a few ms would fire spuriously. Loops still stop.
    c.plugins.deadline_ms = 200;
    // One compiled-plugin cache for the whole test run.
    c.plugins.cache_dir = std::env::temp_dir()
        .join("switchboard-test-plugin-cache")
        .display()
        .to_string();
    c
}

impl TestRouter {
    /// Starts a router with the standard test directory: employees 2001-2004
    /// (password `pw-<ext>-secret`), device 2902 owned by 2002, hunt groups
    /// 2100 (ring all: 2003, 2004) and 2101 (sequential: 2003, 2004).
    pub async fn start() -> TestRouter {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestRouter::start`] with a config tweak.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestRouter {
        let dir = tempfile::tempdir().unwrap();
        let database_url = test_database(dir.path()).await;
        let server = std::env::var(POSTGRES_ENV).ok();
        Self::start_on(dir, database_url, server, tweak).await
    }

    /// The first node of a cluster: a router like [`TestRouter::start_with`]
    /// on a new database of the PostgreSQL server `server`; more nodes join
    /// with [`TestRouter::join`].
    pub async fn start_cluster(server: &str, tweak: impl FnOnce(&mut Config)) -> TestRouter {
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_postgres_database(server).await;
        Self::start_on(dir, database_url, Some(server.to_owned()), tweak).await
    }

    /// Starts another router on this one's database (another node of the
    /// cluster), with the test config and `tweak`.
    pub async fn join(&self, tweak: impl FnOnce(&mut Config)) -> Running {
        let mut config = test_config(&self.database_url);
        config.sip.default_domain = Some(DOMAIN.into());
        tweak(&mut config);
        switchboard::run(config).await.unwrap()
    }

    async fn start_on(
        dir: tempfile::TempDir,
        database_url: String,
        postgres_server: Option<String>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestRouter {
        let mut config = test_config(&database_url);
        tweak(&mut config);
        let running = switchboard::run(config).await.unwrap();
        let store = running.store().clone();
        let directory = running.directory().clone();
        provision::create_tenant(
            &store,
            &NewTenant {
                domain: DOMAIN.into(),
                name: "Test".into(),
                time_zone: Some("Europe/London".into()),
                trunk_uri: None,
                voicemail_uri: None,
                hotdesk_first: None,
                hotdesk_last: None,
                busy_on_active_call: false,
            },
        )
        .await
        .unwrap();
        directory.reload().await.unwrap();
        for ext in ["2001", "2002", "2003", "2004"] {
            let t = directory.tenant_for(DOMAIN).unwrap();
            provision::create_employee(
                &store,
                &t,
                &NewEmployee {
                    name: format!("User {ext}"),
                    login: None,
                    password: password(ext),
                    position: None,
                    role: None,
                    extension: Some(ext.into()),
                    email: None,
                    mobile: None,
                    voicemail_pin: None,
                    department_id: None,
                    forced_login: None,
                    call_waiting: None,
                },
            )
            .await
            .unwrap();
            directory.reload().await.unwrap();
        }
        let t = directory.tenant_for(DOMAIN).unwrap();
        let id_of = |ext: &str| t.employee_by_extension(ext).unwrap().id;
        provision::create_device(
            &store,
            &t,
            &NewDevice {
                username: "2902".into(),
                password: password("2902"),
                name: Some("Bob's softphone".into()),
                employee_id: Some(id_of("2002")),
                digest_algorithms: Vec::new(),
            },
        )
        .await
        .unwrap();
        for (ext, strategy) in [
            ("2100", RingStrategy::RingAll),
            ("2101", RingStrategy::Sequential),
        ] {
            provision::create_hunt_group(
                &store,
                &t,
                &NewHuntGroup {
                    extension: ext.into(),
                    name: format!("Group {ext}"),
                    strategy: Some(strategy),
                    member_ring_secs: Some(5),
                    total_ring_secs: Some(30),
                    no_answer_applies_to: None,
                    members: vec![id_of("2003"), id_of("2004")],
                },
            )
            .await
            .unwrap();
        }
        directory.reload().await.unwrap();
        directory.set_default_domain(Some(DOMAIN.into()));
        TestRouter {
            running,
            dir,
            _database: postgres_server.map(|server| DropDatabase {
                server,
                url: database_url.clone(),
            }),
            database_url,
            certs: None,
        }
    }

    /// An admin API request as the platform operator; returns status and
    /// JSON body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, serde_json::Value) {
        self.api_as("test-admin-token", method, path, body).await
    }

    /// An admin API request with a bearer token (empty: none).
    pub async fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, serde_json::Value) {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client.request(
            method,
            format!("http://{}/api/v1{path}", self.running.http_addr),
        );
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            let kind = if matches!(b.first(), Some(b'{' | b'[')) {
                "application/json"
            } else {
                "application/wasm"
            };
            req = req.header("content-type", kind).body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The router's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.running.http_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Uploads a guest built from `plugins/` as tenant 1's plugin `name`.
    pub async fn upload_guest(&self, name: &str, guest: &str) -> (u16, serde_json::Value) {
        let wasm = switchboard::plugins::builtin::get(guest).unwrap().to_vec();
        self.api("POST", &format!("/tenants/1/plugins/{name}"), Some(wasm))
            .await
    }

    /// Sets tenant 1's chain (all enabled).
    pub async fn chain(&self, names: &[&str]) {
        let chain: Vec<serde_json::Value> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "enabled": true}))
            .collect();
        let body = serde_json::json!({ "chain": chain })
            .to_string()
            .into_bytes();
        let (status, resp) = self.api("PUT", "/tenants/1/plugin-chain", Some(body)).await;
        assert_eq!(status, 200, "{resp}");
    }

    /// Stores a plugin's settings for tenant 1.
    pub async fn settings(
        &self,
        name: &str,
        scope: &str,
        json: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.api(
            "PUT",
            &format!("/tenants/1/plugins/{name}/settings/{scope}"),
            Some(json.to_string().into_bytes()),
        )
        .await
    }

    /// Database id of tenant 1's employee with this extension.
    pub fn employee_id(&self, ext: &str) -> i64 {
        self.running
            .directory()
            .tenant_for(DOMAIN)
            .unwrap()
            .employee_by_extension(ext)
            .unwrap()
            .id
    }

    /// Logs in as tenant 1's employee `ext` (login = extension); returns
    /// the session token.
    pub async fn login(&self, ext: &str) -> String {
        let body = serde_json::json!({"domain": DOMAIN, "login": ext, "password": password(ext)});
        let (status, resp) = self
            .api_as("", "POST", "/login", Some(body.to_string().into_bytes()))
            .await;
        assert_eq!(status, 200, "login {ext}: {resp}");
        resp["token"].as_str().unwrap().to_owned()
    }

    /// Changes tenant 1's employee `ext` over the admin API.
    pub async fn patch_employee(&self, ext: &str, patch: serde_json::Value) {
        let (status, body) = self
            .api(
                "PATCH",
                &format!("/tenants/1/employees/{}", self.employee_id(ext)),
                Some(patch.to_string().into_bytes()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Adds an employee (password `pw-<ext>-secret`); returns their id.
    pub async fn add_employee(&self, ext: &str, extra: serde_json::Value) -> i64 {
        let mut body = serde_json::json!({"name": format!("User {ext}"), "password": password(ext), "extension": ext});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, resp) = self
            .api(
                "POST",
                "/tenants/1/employees",
                Some(body.to_string().into_bytes()),
            )
            .await;
        assert_eq!(status, 201, "{resp}");
        resp["id"].as_i64().unwrap()
    }

    /// Changes tenant 1 (`trunk_uri`, `voicemail_uri`, ...).
    pub async fn patch_tenant(&self, patch: serde_json::Value) {
        let (status, resp) = self
            .api("PATCH", "/tenants/1", Some(patch.to_string().into_bytes()))
            .await;
        assert_eq!(status, 200, "{resp}");
    }

    /// Moves the tenant clock forward (schedules, absences).
    pub fn advance_clock(&self, by: Duration) {
        self.running.router().plugins().state().advance_clock(by);
    }

    /// Adds a hotdesk device account (password `pw-<username>-secret`).
    pub async fn add_device(&self, username: &str) {
        let body = serde_json::json!({"username": username, "password": password(username)});
        let (status, resp) = self
            .api(
                "POST",
                "/tenants/1/devices",
                Some(body.to_string().into_bytes()),
            )
            .await;
        assert_eq!(status, 201, "{resp}");
    }

    /// SIP address.
    pub fn sip(&self) -> SocketAddr {
        self.running.sip_addr
    }

    /// A router like [`TestRouter::start_with`], with SIP over TLS on a
    /// free port using [`test_certificate`].
    pub async fn start_with_tls(tweak: impl FnOnce(&mut Config)) -> TestRouter {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = test_certificate();
        let cert_path = certs.path().join("cert.pem");
        let key_path = certs.path().join("key.pem");
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let mut r = Self::start_with(|c| {
            c.sip.tls_listen = Some("127.0.0.1:0".parse().unwrap());
            c.sip.tls_cert = Some(cert_path.display().to_string());
            c.sip.tls_key = Some(key_path.display().to_string());
            c.sip.tls_ca = Some(cert_path.display().to_string());
            tweak(c);
        })
        .await;
        r.certs = Some(certs);
        r
    }

    /// The certificate and key files of a TLS router (PEM).
    pub fn tls_files(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = self.certs.as_ref().expect("a router started with TLS");
        (dir.path().join("cert.pem"), dir.path().join("key.pem"))
    }

    /// Where a phone over `proto` connects.
    pub fn addr_for(&self, proto: Proto) -> SocketAddr {
        match proto {
            Proto::Tls => self.running.tls_addr.expect("a router started with TLS"),
            _ => self.sip(),
        }
    }

    /// A registered phone for `user` over `proto`.
    pub async fn phone(&self, user: &str, proto: Proto) -> Phone {
        let mut p = Phone::new(self.addr_for(proto), user, &password(user), proto).await;
        let r = p.register(3600).await;
        assert_eq!(r.status(), Some(200), "register {user}: {}", r.raw);
        p
    }
}

/// Whether the Debian tool `command` (package `package`) is installed.
/// Tests that need it report NOT RUN without it, except under CI (the `CI`
/// variable set), where its absence is a failure: `.ci/run` installs it.
pub fn tool_available(command: &str, probe_arg: &str, package: &str) -> bool {
    let found = std::process::Command::new(command)
        .arg(probe_arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{command} is not installed (Debian package {package}); CI must have it"
        );
        eprintln!("NOT RUN: {command} is not installed (apt-get install {package})");
    }
    found
}

/// Polls `f` every 100 ms until it holds or `within` has passed; its last
/// answer.
pub async fn wait_until(within: Duration, f: impl Fn() -> bool) -> bool {
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

/// The password of a test account.
pub fn password(user: &str) -> String {
    format!("pw-{user}-secret")
}

/// Transport of a test phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS to the router's TLS port, trusting the test certificate.
    Tls,
}

/// The test certificate (`localhost`, `127.0.0.1`), made once per run:
/// (certificate PEM, key PEM).
pub fn test_certificate() -> &'static (String, String) {
    static CERT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    CERT.get_or_init(|| {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    })
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    tls_connector_trusting(&test_certificate().0)
}

/// A TLS client that trusts only the certificates in `pem`.
pub fn tls_connector_trusting(pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(pem) {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A parsed SIP message, read independently of the router's parser.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The whole text.
    pub raw: String,
    /// Start line.
    pub first: String,
    /// Headers with long names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Msg {
    fn parse(raw: &str) -> Option<Msg> {
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let first = lines.next()?.to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (long_name(n.trim()).to_owned(), v.trim().to_owned()))
            .collect();
        Some(Msg {
            raw: raw.to_owned(),
            first,
            headers,
            body: body.to_owned(),
        })
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.first
            .strip_prefix("SIP/2.0 ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> &str {
        self.first
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.split_once(' '))
            .map(|(_, reason)| reason)
            .unwrap_or("")
    }

    /// Method of a request.
    pub fn method(&self) -> Option<&str> {
        if self.first.starts_with("SIP/2.0") {
            None
        } else {
            self.first.split(' ').next()
        }
    }

    /// First header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The To tag.
    pub fn to_tag(&self) -> Option<String> {
        self.header("To")?
            .split(";tag=")
            .nth(1)
            .map(|t| t.split(';').next().unwrap_or(t).to_owned())
    }
}

fn long_name(n: &str) -> &str {
    match n {
        "v" => "Via",
        "f" => "From",
        "t" => "To",
        "i" => "Call-ID",
        "m" => "Contact",
        "l" => "Content-Length",
        "c" => "Content-Type",
        _ => n,
    }
}

/// A byte stream to the router: TCP, or TLS over TCP.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

enum Sock {
    Udp(UdpSocket),
    Tcp(Box<dyn Stream>, Vec<u8>),
}

/// A SIP phone on 127.0.0.1.
pub struct Phone {
    sock: Sock,
    /// Local address.
    pub local: SocketAddr,
    router: SocketAddr,
    /// SIP user.
    pub user: String,
    password: String,
    proto: Proto,
    cseq: u32,
    reg_call_id: String,
    sha256: bool,
    /// The SDP offer of this phone's INVITEs (default: PCMU at port 4000,
    /// where nothing listens).
    pub offer: Option<String>,
}

/// State of a call this phone placed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Call-ID.
    pub call_id: String,
    /// From tag.
    pub from_tag: String,
    /// Top Via branch of the INVITE.
    pub branch: String,
    /// CSeq number of the INVITE.
    pub cseq: u32,
    /// Target user.
    pub to_user: String,
    /// Authorization header the INVITE carried, if any.
    pub auth: Option<String>,
    /// Extra header lines (each ending in CRLF).
    pub extra: String,
}

fn rand_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn param(v: &str, name: &str) -> Option<String> {
    let key = format!("{name}=");
    let i = v.find(&key)?;
    let rest = &v[i + key.len()..];
    let val = if let Some(r) = rest.strip_prefix('"') {
        r.split('"').next()?
    } else {
        rest.split([',', ';', ' ']).next()?
    };
    Some(val.to_owned())
}

impl Phone {
    /// An unregistered phone.
    pub async fn new(router: SocketAddr, user: &str, password: &str, proto: Proto) -> Phone {
        let (sock, local) = match proto {
            Proto::Udp => {
                let s = UdpSocket::bind(if router.is_ipv6() {
                    "[::1]:0"
                } else {
                    "127.0.0.1:0"
                })
                .await
                .unwrap();
                let l = s.local_addr().unwrap();
                (Sock::Udp(s), l)
            }
            Proto::Tcp => {
                let s = TcpStream::connect(router).await.unwrap();
                let l = s.local_addr().unwrap();
                (Sock::Tcp(Box::new(s), Vec::new()), l)
            }
            Proto::Tls => {
                let s = TcpStream::connect(router).await.unwrap();
                let l = s.local_addr().unwrap();
                let tls = tls_connector()
                    .connect(
                        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                        s,
                    )
                    .await
                    .expect("TLS handshake with the router");
                (Sock::Tcp(Box::new(tls), Vec::new()), l)
            }
        };
        Phone {
            sock,
            local,
            router,
            user: user.into(),
            password: password.into(),
            proto,
            cseq: 1,
            reg_call_id: format!("reg-{}", rand_hex()),
            sha256: false,
            offer: None,
        }
    }

    fn transport(&self) -> &'static str {
        match self.proto {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
        }
    }

    /// This phone's Contact URI.
    pub fn contact(&self) -> String {
        let t = match self.proto {
            Proto::Udp => "",
            Proto::Tcp => ";transport=tcp",
            Proto::Tls => ";transport=tls",
        };
        format!("<sip:{}@{}{t}>", self.user, self.local)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport(),
            self.local
        )
    }

    /// Sends raw text (Content-Length must already be right).
    pub async fn send_raw(&mut self, text: &str) {
        match &mut self.sock {
            Sock::Udp(s) => {
                s.send_to(text.as_bytes(), self.router).await.unwrap();
            }
            Sock::Tcp(s, _) => s.write_all(text.as_bytes()).await.unwrap(),
        }
    }

    /// Receives the next message within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Msg> {
        match &mut self.sock {
            Sock::Udp(s) => {
                let mut buf = vec![0u8; 65536];
                let (n, _) = tokio::time::timeout(timeout, s.recv_from(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                Msg::parse(&String::from_utf8_lossy(&buf[..n]))
            }
            Sock::Tcp(s, pending) => {
                let deadline = tokio::time::Instant::now() + timeout;
                loop {
                    let text = String::from_utf8_lossy(pending).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let cl = text[..end]
                            .split("\r\n")
                            .filter_map(|l| l.split_once(':'))
                            .find(|(n, _)| {
                                n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l"
                            })
                            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if pending.len() >= end + 4 + cl {
                            let msg: Vec<u8> = pending.drain(..end + 4 + cl).collect();
                            return Msg::parse(&String::from_utf8_lossy(&msg));
                        }
                    }
                    let mut buf = [0u8; 8192];
                    let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
                        .await
                        .ok()?
                        .ok()?;
                    if n == 0 {
                        return None;
                    }
                    pending.extend_from_slice(&buf[..n]);
                }
            }
        }
    }

    /// Receives until a message satisfies `f` (others are dropped).
    pub async fn recv_until(&mut self, timeout: Duration, f: impl Fn(&Msg) -> bool) -> Option<Msg> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let m = self.recv(left).await?;
            if f(&m) {
                return Some(m);
            }
        }
    }

    /// A final response (>= 200) within `timeout`.
    pub async fn final_response(&mut self, timeout: Duration) -> Option<Msg> {
        self.recv_until(timeout, |m| m.status().is_some_and(|s| s >= 200))
            .await
    }

    /// An Authorization value answering `challenge` (its algorithm).
    pub fn digest(&self, challenge: &str, method: &str, uri: &str) -> String {
        let realm = param(challenge, "realm").unwrap_or_default();
        let nonce = param(challenge, "nonce").unwrap_or_default();
        let sha = param(challenge, "algorithm").is_some_and(|a| a.eq_ignore_ascii_case("SHA-256"));
        let h = |s: &str| {
            if sha {
                hex(&sha2::Sha256::digest(s.as_bytes()))
            } else {
                md5_hex(s)
            }
        };
        let ha1 = h(&format!("{}:{realm}:{}", self.user, self.password));
        let ha2 = h(&format!("{method}:{uri}"));
        let cnonce = rand_hex();
        let nc = "00000001";
        let response = h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
            self.user,
            if sha { "SHA-256" } else { "MD5" }
        )
    }

    /// Prefer SHA-256 challenges when the router offers them.
    pub fn prefer_sha256(&mut self) {
        self.sha256 = true;
    }

    /// The text of a REGISTER for `contact`, with `auth` as its Authorization.
    pub fn register_text(&mut self, expires: u32, auth: Option<&str>, contact: &str) -> String {
        self.cseq += 1;
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
             From: <sip:{u}@{DOMAIN}>;tag={t}\r\nTo: <sip:{u}@{DOMAIN}>\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: {expires}\r\n{auth}\
             User-Agent: switchboard-test\r\nContent-Length: 0\r\n\r\n",
            self.via(&format!("z9hG4bK{}", rand_hex())),
            u = self.user,
            t = rand_hex(),
            cid = self.reg_call_id,
            cseq = self.cseq,
        )
    }

    /// REGISTER (answering a 401 challenge once); returns the final response.
    pub async fn register(&mut self, expires: u32) -> Msg {
        let contact = self.contact();
        self.register_contact(expires, &contact).await
    }

    /// REGISTER with an explicit Contact value (`*` to remove all).
    pub async fn register_contact(&mut self, expires: u32, contact: &str) -> Msg {
        let text = self.register_text(expires, None, contact);
        self.send_raw(&text).await;
        let r = self
            .final_response(Duration::from_secs(5))
            .await
            .expect("REGISTER response");
        if r.status() != Some(401) {
            return r;
        }
        let want = if self.sha256 { "SHA-256" } else { "MD5" };
        let ch = r
            .headers_all("WWW-Authenticate")
            .find(|c| c.contains(&format!("algorithm={want}")))
            .unwrap()
            .to_owned();
        let auth = self.digest(&ch, "REGISTER", &format!("sip:{DOMAIN}"));
        let text = self.register_text(expires, Some(&auth), contact);
        self.send_raw(&text).await;
        self.final_response(Duration::from_secs(5))
            .await
            .expect("REGISTER response")
    }

    /// The text of the INVITE of `call` (as sent).
    pub fn invite_text(&self, call: &Outgoing) -> String {
        let sdp = self.offer.as_deref().unwrap_or(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        );
        let auth = call
            .auth
            .as_ref()
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "INVITE sip:{to}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:{u}@{DOMAIN}>;tag={ft}\r\nTo: <sip:{to}@{DOMAIN}>\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} INVITE\r\nContact: {contact}\r\n{auth}{extra}Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            extra = call.extra,
            to = call.to_user,
            via = self.via(&call.branch),
            u = self.user,
            ft = call.from_tag,
            cid = call.call_id,
            cseq = call.cseq,
            contact = self.contact(),
            len = sdp.len(),
        )
    }

    /// Sends an INVITE without credentials.
    pub async fn invite_unauthenticated(&mut self, to_user: &str) -> Outgoing {
        self.cseq += 1;
        let call = Outgoing {
            call_id: format!("call-{}", rand_hex()),
            from_tag: rand_hex(),
            branch: format!("z9hG4bK{}", rand_hex()),
            cseq: self.cseq,
            to_user: to_user.into(),
            auth: None,
            extra: String::new(),
        };
        let text = self.invite_text(&call);
        self.send_raw(&text).await;
        call
    }

    /// Calls `to_user`, answering the 407 challenge; returns once the
    /// authenticated INVITE is sent.
    pub async fn call(&mut self, to_user: &str) -> Outgoing {
        self.call_with(to_user, "").await
    }

    /// Like [`Phone::call`] with extra header lines (`"Referred-By: ...\r\n"`).
    pub async fn call_with(&mut self, to_user: &str, extra: &str) -> Outgoing {
        self.cseq += 1;
        let mut call = Outgoing {
            call_id: format!("call-{}", rand_hex()),
            from_tag: rand_hex(),
            branch: format!("z9hG4bK{}", rand_hex()),
            cseq: self.cseq,
            to_user: to_user.into(),
            auth: None,
            extra: extra.into(),
        };
        let text = self.invite_text(&call);
        self.send_raw(&text).await;
        let r = self
            .final_response(Duration::from_secs(5))
            .await
            .expect("407");
        assert_eq!(r.status(), Some(407), "expected a challenge: {}", r.raw);
        self.ack_failure(&call, &r).await;
        let ch = r.header("Proxy-Authenticate").unwrap().to_owned();
        call.auth = Some(self.digest(&ch, "INVITE", &format!("sip:{to_user}@{DOMAIN}")));
        self.cseq += 1;
        call.cseq = self.cseq;
        call.branch = format!("z9hG4bK{}", rand_hex());
        let text = self.invite_text(&call);
        self.send_raw(&text).await;
        call
    }

    /// Dials a feature code (`*88*2001*1234`) and returns the router's
    /// final answer (acknowledged).
    pub async fn feature(&mut self, code: &str) -> Msg {
        let call = self.call(code).await;
        let resp = self
            .final_response(Duration::from_secs(5))
            .await
            .expect("an answer to the feature code");
        self.ack_failure(&call, &resp).await;
        if resp.status() == Some(200) {
            // No announcement to play: the router hangs up at once.
            let bye = self
                .recv_until(Duration::from_secs(3), |m| m.method() == Some("BYE"))
                .await
                .expect("the router ends an answered feature call with BYE");
            assert_eq!(
                bye.header("Call-ID"),
                resp.header("Call-ID"),
                "BYE in the feature call's dialog"
            );
            self.respond(&bye, 200, "OK", "").await;
        }
        resp
    }

    /// Sends the INVITE of `call` again, unchanged (a retransmission).
    pub async fn resend_invite(&mut self, call: &Outgoing) {
        let text = self.invite_text(call);
        self.send_raw(&text).await;
    }

    /// ACK for a non-2xx final response (same branch as the INVITE).
    pub async fn ack_failure(&mut self, call: &Outgoing, resp: &Msg) {
        let text = format!(
            "ACK sip:{to}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:{u}@{DOMAIN}>;tag={ft}\r\nTo: {to_hdr}\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            to = call.to_user,
            via = self.via(&call.branch),
            u = self.user,
            ft = call.from_tag,
            to_hdr = resp.header("To").unwrap_or_default(),
            cid = call.call_id,
            cseq = call.cseq,
        );
        self.send_raw(&text).await;
    }

    /// CANCEL of a pending INVITE.
    pub async fn cancel(&mut self, call: &Outgoing) {
        let text = format!(
            "CANCEL sip:{to}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:{u}@{DOMAIN}>;tag={ft}\r\nTo: <sip:{to}@{DOMAIN}>\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} CANCEL\r\nContent-Length: 0\r\n\r\n",
            to = call.to_user,
            via = self.via(&call.branch),
            u = self.user,
            ft = call.from_tag,
            cid = call.call_id,
            cseq = call.cseq,
        );
        self.send_raw(&text).await;
    }

    /// `callee` answers `inv` (our `call`) with 200; the 200 must reach us
    /// within 4 s, and we ACK it. The 200 as we got it.
    pub async fn answered_by(&mut self, call: &Outgoing, callee: &mut Phone, inv: &Msg) -> Msg {
        callee.respond(inv, 200, "OK", "b").await;
        let ok = self
            .recv_until(Duration::from_secs(4), |m| m.status() == Some(200))
            .await
            .expect("the callee's 200 relayed to the caller");
        self.in_dialog(call, &ok, "ACK", call.cseq).await;
        ok
    }

    /// Hangs up the answered `call`: the BYE must reach `callee`, who
    /// answers it, and its 200 must come back to us, each within 4 s.
    pub async fn hang_up(&mut self, call: &Outgoing, ok: &Msg, callee: &mut Phone) {
        const T: Duration = Duration::from_secs(4);
        self.in_dialog(call, ok, "BYE", call.cseq + 1).await;
        let bye = callee
            .recv_until(T, |m| m.method() == Some("BYE"))
            .await
            .expect("the BYE reaches the callee");
        callee.respond(&bye, 200, "OK", "").await;
        assert!(
            self.recv_until(T, |m| m.status() == Some(200))
                .await
                .is_some(),
            "the 200 for the BYE comes back"
        );
    }

    /// Sends an in-dialog request (ACK or BYE) after a 2xx, following its
    /// Record-Route and Contact.
    pub async fn in_dialog(&mut self, call: &Outgoing, ok: &Msg, method: &str, cseq: u32) {
        self.in_dialog_with(call, ok, method, cseq, "", "").await
    }

    /// An in-dialog request with a body of this type (none when empty).
    pub async fn in_dialog_with(
        &mut self,
        call: &Outgoing,
        ok: &Msg,
        method: &str,
        cseq: u32,
        content_type: &str,
        body: &str,
    ) {
        let target = ok
            .header("Contact")
            .map(|c| {
                c.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or(c)
                    .to_owned()
            })
            .unwrap();
        // The caller's route set is the Record-Route list reversed (RFC
        // 3261 12.1.2): the proxy nearest the caller first.
        let mut routes: Vec<String> = ok
            .headers_all("Record-Route")
            .flat_map(|h| h.split(','))
            .map(|r| r.trim().to_owned())
            .collect();
        routes.reverse();
        let route_hdrs: String = routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
        let text = format!(
            "{method} {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n{route_hdrs}\
             From: <sip:{u}@{DOMAIN}>;tag={ft}\r\nTo: {to_hdr}\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n{ct}Content-Length: {len}\r\n\r\n{body}",
            via = self.via(&format!("z9hG4bK{}", rand_hex())),
            u = self.user,
            ft = call.from_tag,
            to_hdr = ok.header("To").unwrap_or_default(),
            cid = call.call_id,
            ct = if content_type.is_empty() {
                String::new()
            } else {
                format!("Content-Type: {content_type}\r\n")
            },
            len = body.len(),
        );
        self.send_raw(&text).await;
    }

    /// Text of an out-of-dialog request to `to_user` (no credentials).
    pub fn request_text(&mut self, method: &str, to_user: &str, auth: Option<&str>) -> String {
        self.cseq += 1;
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "{method} sip:{to_user}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:{u}@{DOMAIN}>;tag={ft}\r\nTo: <sip:{to_user}@{DOMAIN}>\r\n\
             Call-ID: req-{cid}\r\nCSeq: {cseq} {method}\r\nContact: {contact}\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            via = self.via(&format!("z9hG4bK{}", rand_hex())),
            u = self.user,
            ft = rand_hex(),
            cid = rand_hex(),
            cseq = self.cseq,
            contact = self.contact(),
        )
    }

    /// Sends an out-of-dialog request (MESSAGE, OPTIONS, SUBSCRIBE...) to
    /// `to_user`, answering one 407 challenge; returns the final response.
    pub async fn request(&mut self, method: &str, to_user: &str) -> Option<Msg> {
        let text = self.request_text(method, to_user, None);
        self.send_raw(&text).await;
        let first = self.final_response(Duration::from_secs(3)).await?;
        if first.status() != Some(407) {
            return Some(first);
        }
        let ch = first.header("Proxy-Authenticate")?.to_owned();
        let auth = self.digest(&ch, method, &format!("sip:{to_user}@{DOMAIN}"));
        let text = self.request_text(method, to_user, Some(&auth));
        self.send_raw(&text).await;
        self.final_response(Duration::from_secs(3)).await
    }

    /// Waits for an INVITE.
    pub async fn expect_invite(&mut self, timeout: Duration) -> Option<Msg> {
        self.recv_until(timeout, |m| m.method() == Some("INVITE"))
            .await
    }

    /// Sends a request inside the dialog of an INVITE this phone answered
    /// with To-tag `my_tag` (the callee's side: route set from the
    /// INVITE's Record-Route, target its Contact).
    pub async fn request_as_callee(
        &mut self,
        invite: &Msg,
        my_tag: &str,
        method: &str,
        cseq: u32,
        extra: &str,
    ) {
        let target = invite
            .header("Contact")
            .map(|c| c.trim_start_matches('<').split('>').next().unwrap_or(c))
            .unwrap_or_default()
            .to_owned();
        let routes: String = invite
            .headers_all("Record-Route")
            .map(|v| format!("Route: {v}\r\n"))
            .collect();
        let branch = format!("z9hG4bK{}", rand_hex());
        let text = format!(
            "{method} {target} SIP/2.0\r\nVia: {via}\r\n{routes}Max-Forwards: 70\r\n\
             From: {to};tag={my_tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
             Contact: {contact}\r\n{extra}Content-Length: 0\r\n\r\n",
            via = self.via(&branch),
            to = invite.header("To").unwrap_or_default(),
            from = invite.header("From").unwrap_or_default(),
            cid = invite.header("Call-ID").unwrap_or_default(),
            contact = self.contact(),
        );
        self.send_raw(&text).await;
    }

    /// Answers a request (as UAS) with `code`; the To tag is `tag`.
    pub async fn respond(&mut self, req: &Msg, code: u16, reason: &str, tag: &str) {
        let vias: String = req
            .headers_all("Via")
            .map(|v| format!("Via: {v}\r\n"))
            .collect();
        let rr: String = req
            .headers_all("Record-Route")
            .map(|v| format!("Record-Route: {v}\r\n"))
            .collect();
        let to = req.header("To").unwrap_or_default();
        let to = if to.contains(";tag=") || code == 100 {
            to.to_owned()
        } else {
            format!("{to};tag={tag}")
        };
        let text = format!(
            "SIP/2.0 {code} {reason}\r\n{vias}{rr}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
             Contact: {}\r\nContent-Length: 0\r\n\r\n",
            req.header("From").unwrap_or_default(),
            req.header("Call-ID").unwrap_or_default(),
            req.header("CSeq").unwrap_or_default(),
            self.contact(),
        );
        self.send_raw(&text).await;
    }
}
