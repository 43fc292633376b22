//! What a phone is told was done survives `kill -9` right after the answer:
//! the real `switchboard` binary, a hotdesk login by feature code from the
//! demo tenant's desk phone, SIGKILL the moment the 200 arrives, then the
//! database file is read. Logins and log-outs alternate, twenty in all.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

const DOMAIN: &str = "demo.switchboard.test";
const ROUNDS: usize = 20;

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn param(v: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    v.split(&key)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// Starts the binary on `dir`'s database; returns it and its SIP address.
async fn start(dir: &std::path::Path) -> (Child, SocketAddr) {
    let cache = std::env::temp_dir().join("switchboard-test-plugin-cache");
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [plugins]\ncache_dir = \"{}\"\ndeadline_ms = 200\n",
            dir.join("kill9.db").display(),
            cache.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "switchboard=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let sip = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("switchboard: SIP on ") {
                return rest.split(' ').next().unwrap().parse().unwrap();
            }
        }
        panic!("the router exited before listening")
    })
    .await
    .expect("the router starts within 60 s");
    // Keep reading so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, sip)
}

/// Dials `code` from the hotdesk phone 5401 (answering the challenge);
/// returns the final status the phone hears.
async fn dial(sock: &UdpSocket, router: SocketAddr, code: &str, n: usize) -> u16 {
    let local = sock.local_addr().unwrap();
    let ruri = format!("sip:{code}@{DOMAIN}");
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKk9{n}x{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:5401@{DOMAIN}>;tag=k9{n}\r\nTo: <{ruri}>\r\n\
             Call-ID: kill9-{n}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:5401@{local}>\r\n{auth}\
             Content-Length: 0\r\n\r\n"
        )
    };
    sock.send_to(invite(1, "").as_bytes(), router)
        .await
        .unwrap();
    let (code, challenge) = recv_final(sock).await;
    assert_eq!(code, 407, "{challenge}");
    let line = challenge
        .lines()
        .find(|l| l.starts_with("Proxy-Authenticate:"))
        .unwrap();
    let (realm, nonce) = (param(line, "realm"), param(line, "nonce"));
    let ha1 = md5_hex(&format!("5401:{realm}:desk-5401-pw"));
    let ha2 = md5_hex(&format!("INVITE:{ruri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c{n}:auth:{ha2}"));
    let auth = format!(
        "Proxy-Authorization: Digest username=\"5401\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{ruri}\", response=\"{response}\", algorithm=MD5, cnonce=\"c{n}\", qop=auth, nc=00000001\r\n"
    );
    sock.send_to(invite(2, &auth).as_bytes(), router)
        .await
        .unwrap();
    recv_final(sock).await.0
}

/// The next final response: its status and text.
async fn recv_final(sock: &UdpSocket) -> (u16, String) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let code: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if text.starts_with("SIP/2.0") && code >= 200 {
            return (code, text);
        }
    }
}

async fn bindings(db: &std::path::Path) -> Vec<(String, String)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT device, extension FROM device_bindings")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn acknowledged_feature_code_logins_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut lost = Vec::new();
    for n in 0..ROUNDS {
        let (mut child, router) = start(dir.path()).await;
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let login = n % 2 == 0;
        let code = if login { "*88*2003*3333" } else { "*89" };
        let status = dial(&sock, router, code, n).await;
        // SIGKILL the moment the phone has its answer.
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        assert_eq!(status, 200, "round {n}: {code}");
        let rows = bindings(&dir.path().join("kill9.db")).await;
        let expected = if login {
            vec![("5401".to_owned(), "2003".to_owned())]
        } else {
            Vec::new()
        };
        if rows != expected {
            lost.push((n, code, rows));
        }
    }
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}
