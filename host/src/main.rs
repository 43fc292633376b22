//! `switchboard`: runs the router. With no arguments it uses the embedded
//! defaults: SQLite in `./switchboard.db`, SIP on 0.0.0.0:5060 (UDP and TCP),
//! HTTP admin on 127.0.0.1:8080, and a demo tenant on first start.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Programmable SIP call router.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (every key optional; see switchboard.example.toml).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Log lines as text (colours only on a terminal) or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Validate the configuration (and its TLS files), print what is wrong,
    /// and exit without starting.
    #[arg(long)]
    check_config: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "switchboard=info".into());
    match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::stdout().is_terminal())
            .with_env_filter(filter)
            .init(),
    }
    let config = match &args.config {
        Some(path) => switchboard::config::Config::from_file(path)?,
        None => switchboard::config::Config::default(),
    };
    if args.check_config {
        config.validate()?;
        if let Some((_, files)) = config.tls() {
            switchboard::transport::tls::Tls::load(files).context("sip.tls_cert / sip.tls_key")?;
        }
        println!("configuration is valid");
        return Ok(());
    }
    let running = switchboard::run(config)
        .await
        .context("switchboard could not start")?;
    println!(
        "switchboard: SIP on {} (UDP and TCP), web console on http://{}/, admin API under /api/v1",
        running.sip_addr, running.http_addr
    );
    if let Some(v6) = running.sip_addr_v6 {
        println!("switchboard: SIP on {v6} (UDP and TCP) as well");
    }
    println!("admin token: {}", running.admin_token);
    if let Some(demo) = &running.demo {
        println!(
            "demo tenant `{}` created. Register a softphone with:",
            demo.domain
        );
        println!(
            "  domain/registrar: {} (or this machine's IP, port {})",
            demo.domain,
            running.sip_addr.port()
        );
        for (ext, name, password) in &demo.accounts {
            println!("  user {ext:<5} password {password:<14} ({name})");
        }
        println!("then dial another extension, e.g. 2002, or the Sales hunt group 2100.");
        println!("From 5401, dial *88*2003*3333 to log Carol in at that desk, *89 to log out.");
        println!(
            "Web console: open http://{}/ and log in with domain {}, login alice, password alice-2001-pw (administrator) or bob / bob-2002-pw (user).",
            running.http_addr, demo.domain
        );
        println!(
            "Admin API as an employee: POST /api/v1/login {{\"domain\": \"{}\", \"login\": \"alice\", \"password\": \"alice-2001-pw\"}}",
            demo.domain
        );
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    running.shutdown().await;
    Ok(())
}
