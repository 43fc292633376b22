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
    #[command(subcommand)]
    command: Option<Command>,
}

/// Tools besides running the router.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Work on a plugin without a router.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// `switchboard plugin ...`.
#[derive(Debug, clap::Subcommand)]
enum PluginCommand {
    /// Runs a plugin component against a script of decisions (see
    /// plugins/README.md): prints each decision and whether it matched the
    /// step's `expect`; exits 1 when one did not.
    Test {
        /// The component (.wasm), built for wasm32-wasip2.
        wasm: PathBuf,
        /// The script (JSON).
        #[arg(long, short)]
        script: PathBuf,
        /// Print the reports as JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `switchboard plugin test`; the exit code says whether every step
/// matched.
async fn plugin_test(wasm: &PathBuf, script: &PathBuf, json: bool) -> anyhow::Result<bool> {
    use switchboard::plugins::harness::Harness;
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let text =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let script = Harness::parse(&text).with_context(|| script.display().to_string())?;
    let harness = Harness::new(&bytes, &script, None).await?;
    let reports = harness.run(&script)?;
    for r in &reports {
        if json {
            println!("{}", serde_json::to_string(r)?);
            continue;
        }
        let verdict = if r.passed() { "ok  " } else { "FAIL" };
        println!("{verdict} {}: {}", r.name, r.decision);
        if let Some(f) = &r.fault {
            println!("     fault: {f}");
        }
        for a in &r.annotations {
            println!("     note: {a}");
        }
        if let Some(m) = &r.mismatch {
            println!("     {m}");
        }
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    if !json {
        println!("{} steps, {failed} failed", reports.len());
    }
    Ok(failed == 0)
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
    if let Some(Command::Plugin(PluginCommand::Test { wasm, script, json })) = &args.command {
        // Only warnings: the plugin's own log lines are what an author reads.
        tracing_subscriber::fmt()
            .with_env_filter(
                EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn,switchboard::plugins=info".into()),
            )
            .with_writer(std::io::stderr)
            .init();
        // 0: every step matched; 1: one did not; 2: the script or the
        // plugin could not be run at all.
        let code = match plugin_test(wasm, script, *json).await {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        };
        std::process::exit(code);
    }
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
