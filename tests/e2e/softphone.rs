//! A real softphone through the router: Debian's baresip registers with
//! digest, calls another extension, the callee answers automatically,
//! audio flows and the caller hangs up when its 2 s tone ends. Over UDP
//! and over TLS. `.ci/run` installs baresip; elsewhere the tests say
//! plainly that they did not run. The last test logs in at a hotdesk
//! phone by voice: baresip dials `*88` and sends its keys as RFC 4733
//! events, commanded over its `ctrl_tcp` port.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use switchboard_e2e::{password, wait_until, TestRouter, DOMAIN};
use tokio::process::{Child, Command};

/// A port free for UDP and TCP, with the next one free for TCP (baresip
/// puts its TLS listener there).
fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let port = 20_000 + rand::random::<u16>() % 40_000;
        let ok = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok();
        if ok {
            return port;
        }
    }
    panic!("no free port pair for baresip")
}

/// An 8 kHz mono tone of `secs` seconds.
fn tone(path: &Path, secs: u32) {
    let samples = 8000 * secs;
    let mut wav = Vec::new();
    let data_len = samples * 2;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v =
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16;
        wav.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, wav).unwrap();
}

/// A baresip configuration folder for `user`, registering through
/// `outbound`; the callee answers on its own.
fn profile(dir: &Path, user: &str, outbound: &str, tls: bool, cafile: Option<&Path>, answer: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let wav = dir.join("tone.wav");
    tone(&wav, 2);
    let mut config = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{}\nmodule_path /usr/lib/baresip/modules\n\
         module g711.so\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n\
         audio_player aufile,/dev/null\naudio_source aufile,{}\naudio_alert aufile,/dev/null\n",
        free_sip_port(),
        wav.display()
    );
    if let Some(ca) = cafile {
        config.push_str(&format!("sip_cafile {}\n", ca.display()));
    }
    std::fs::write(dir.join("config"), config).unwrap();
    let t = if tls { ";transport=tls" } else { "" };
    let answer = if answer { ";answermode=auto" } else { "" };
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{user}@{DOMAIN}{t}>;auth_pass={pw};outbound=\"{outbound}\";regint=600{answer}\n",
            pw = password(user)
        ),
    )
    .unwrap();
}

fn baresip(dir: &Path, secs: u32, command: Option<&str>) -> Child {
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(dir).arg("-t").arg(secs.to_string());
    if let Some(c) = command {
        cmd.arg("-e").arg(c);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip starts")
}

async fn a_softphone_call(r: &TestRouter, outbound: &str, tls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let ca = tls.then(|| r.tls_files().0);
    let (callee_dir, caller_dir) = (dir.path().join("callee"), dir.path().join("caller"));
    profile(&callee_dir, "2002", outbound, tls, ca.as_deref(), true);
    profile(&caller_dir, "2001", outbound, tls, ca.as_deref(), false);
    let location = r.running.router().registrar().location().clone();
    let mut callee = baresip(&callee_dir, 30, None);
    assert!(
        wait_until(Duration::from_secs(10), || location
            .is_registered(1, "2002"))
        .await,
        "baresip 2002 registered with digest"
    );
    let mut caller = baresip(&caller_dir, 15, Some("/dial 2002"));
    let exited = tokio::time::timeout(Duration::from_secs(20), caller.wait()).await;
    let _ = callee.kill().await;
    assert!(exited.is_ok(), "the caller's baresip ended by itself");
    let mut last = serde_json::Value::Null;
    for _ in 0..30 {
        let (status, body) = r.api("GET", "/tenants/1/calls?limit=1", None).await;
        assert_eq!(status, 200);
        last = body["items"][0].clone();
        if !last["ended_at"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["outcome"], "answered", "{last}");
    assert_eq!(last["caller"], "2001", "{last}");
    assert_eq!(last["answered_by"], "2002", "{last}");
    assert!(!last["ended_at"].is_null(), "the BYE ended it: {last}");
    assert_eq!(r.running.router().dialogs().len(), 0);
}

#[tokio::test]
async fn baresip_registers_and_calls_over_udp() {
    if !switchboard_e2e::tool_available("baresip", "-h", "baresip-core") {
        return;
    }
    let r = TestRouter::start().await;
    let outbound = format!("sip:{}", r.sip());
    a_softphone_call(&r, &outbound, false).await;
}

#[tokio::test]
async fn baresip_registers_and_calls_over_tls() {
    if !switchboard_e2e::tool_available("baresip", "-h", "baresip-core") {
        return;
    }
    let r = TestRouter::start_with_tls(|_| {}).await;
    let outbound = format!(
        "sip:{};transport=tls",
        r.running.tls_addr.expect("TLS is on")
    );
    a_softphone_call(&r, &outbound, true).await;
}

/// Sends a command to baresip's `ctrl_tcp` (a netstring of JSON).
async fn baresip_command(port: u16, command: &str, params: &str) {
    use tokio::io::AsyncWriteExt;
    let json = serde_json::json!({"command": command, "params": params, "token": "t"}).to_string();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("baresip's control port");
    s.write_all(format!("{}:{json},", json.len()).as_bytes())
        .await
        .unwrap();
    // Let it read the command before the connection closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn baresip_logs_in_at_a_hotdesk_phone_by_voice() {
    if !switchboard_e2e::tool_available("baresip", "-h", "baresip-core") {
        return;
    }
    let r = TestRouter::start().await;
    r.add_device("5401").await;
    r.patch_employee("2003", serde_json::json!({"voicemail_pin": "1234"}))
        .await;
    r.chain(&["hotdesk"]).await;
    let dir = tempfile::tempdir().unwrap();
    let desk_dir = dir.path().join("desk");
    let outbound = format!("sip:{}", r.sip());
    profile(&desk_dir, "5401", &outbound, false, None, false);
    // baresip hangs up when its audio source ends: longer than the call.
    tone(&desk_dir.join("tone.wav"), 30);
    let control = free_sip_port();
    let mut config = std::fs::read_to_string(desk_dir.join("config")).unwrap();
    config.push_str(&format!(
        "module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{control}\n"
    ));
    std::fs::write(desk_dir.join("config"), config).unwrap();
    let location = r.running.router().registrar().location().clone();
    let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
    let mut desk = Command::new("baresip")
        .arg("-f")
        .arg(&desk_dir)
        .arg("-t")
        .arg("40")
        .arg("-v")
        .stdout(log)
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip starts");
    assert!(
        wait_until(Duration::from_secs(10), || location
            .is_registered(1, "5401"))
        .await,
        "baresip 5401 registered"
    );
    baresip_command(control, "dial", "*88").await;
    let media = r.running.router().media().clone();
    assert!(
        wait_until(Duration::from_secs(10), || media.sessions() == 1).await,
        "the router answered *88 with audio"
    );
    // Keys stop the prompt that is playing (barge-in); baresip sends them
    // as RFC 4733 events.
    tokio::time::sleep(Duration::from_millis(800)).await;
    baresip_command(control, "sndcode", "2003#").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    baresip_command(control, "sndcode", "1234#").await;
    let mut logged_in = false;
    for _ in 0..100 {
        let (_, body) = r.api("GET", "/tenants/1/hotdesk", None).await;
        if body["items"] == serde_json::json!([{"device": "5401", "extension": "2003"}]) {
            logged_in = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        wait_until(Duration::from_secs(10), || media.sessions() == 0).await,
        "the router hung up after saying so"
    );
    let _ = desk.kill().await;
    assert!(
        logged_in,
        "2003 is logged in at 5401 by voice; baresip said:\n{}",
        std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default()
    );
}
