//! Builds the guest components in `../plugins` for `wasm32-wasip2` and
//! generates `builtin_plugins.rs`, which embeds them (`include_bytes!`), so
//! `cargo build` / `cargo run` need no extra step.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let plugins = root.join("plugins");
    let wit = root.join("wit");
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-changed={}", wit.display());
    // `sqlx::migrate!` embeds this folder: a new migration must rebuild.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("migrations").display()
    );
    let out_dir = PathBuf::from(env("OUT_DIR"));
    // A target directory outside OUT_DIR and outside the host's profile
    // directory: shared by debug and release host builds and kept between
    // them, so guests rebuild incrementally.
    let target_dir = std::env::var_os("SWITCHBOARD_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("wasm-plugins"));

    let members = guest_names(&plugins);
    for watched in ["sdk/src", "sdk/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    for m in &members {
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(m).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(m).join("Cargo.toml").display()
        );
    }

    ensure_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // The host's flags (coverage, sanitizers, -D warnings from CI) are
        // not meant for the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("failed to run cargo for the plugins");
    assert!(
        status.success(),
        "building plugins/ for wasm32-wasip2 failed"
    );

    let mut code = String::from(
        "/// Guest components built from `plugins/`: (name, wasm bytes).\n\
         pub const ALL: &[(&str, &[u8])] = &[\n",
    );
    for m in &members {
        let file = target_dir
            .join("wasm32-wasip2")
            .join("release")
            .join(format!("{}.wasm", m.replace('-', "_")));
        assert!(file.exists(), "missing guest artifact {}", file.display());
        code.push_str(&format!(
            "    ({m:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), code).expect("write builtin_plugins.rs");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Guest crates of the guest workspace: every directory with a Cargo.toml
/// but the SDK, which is a library the guests build on.
fn guest_names(plugins: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(plugins)
        .expect("read plugins/")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists() && e.file_name() != "sdk")
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The wasm32-wasip2 standard library must be installed; try rustup once
/// so a fresh checkout builds with plain `cargo build`.
fn ensure_target() {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    let installed = sysroot
        .map(|s| s.join("lib/rustlib/wasm32-wasip2").exists())
        .unwrap_or(false);
    if installed {
        return;
    }
    let ok = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`"
    );
}
