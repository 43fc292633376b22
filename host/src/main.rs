//! `switchboard`: runs the router. With no arguments it uses the embedded
//! defaults: SQLite in `./switchboard.db`, SIP on 0.0.0.0:5060 (UDP and TCP),
//! HTTP admin on 127.0.0.1:8080, and a demo tenant on first start.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Programmable SIP call router.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (every key optional; see switchboard.example.toml).
    #[arg(short, long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "switchboard=info".into()),
        )
        .init();
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => switchboard::config::Config::from_file(path)?,
        None => switchboard::config::Config::default(),
    };
    let running = switchboard::run(config)
        .await
        .context("switchboard could not start")?;
    println!(
        "switchboard: SIP on {} (UDP and TCP), admin API on http://{}",
        running.sip_addr, running.http_addr
    );
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
