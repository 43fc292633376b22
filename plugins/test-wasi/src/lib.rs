//! Uses WASI the way everyday std code does. Its tenant setting picks what
//! it does at every decision: `"print"` (println!, eprintln!, a HashMap,
//! SystemTime), `"panic"` (panics with a message) or `"files"` (reads a
//! file).
wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::switchboard::plugin::handler::Guest;
use switchboard::plugin::host;
use switchboard::plugin::types::*;

struct P;

impl Guest for P {
    fn points() -> Vec<DecisionPoint> {
        vec![DecisionPoint::Incoming]
    }
    fn decide(_p: DecisionPoint, _i: PointInput) -> Decision {
        let mode = host::setting("tenant").unwrap_or_default();
        match mode.trim_matches('"') {
            "panic" => panic!("no route for this call"),
            "files" => {
                let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
                println!("read {} bytes", text.len());
            }
            _ => {
                let mut seen = std::collections::HashMap::new();
                seen.insert("calls", 1);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                println!("deciding: {} keys, {now} s since 1970", seen.len());
                eprintln!("a warning on stderr");
            }
        }
        Decision::Continue
    }
    fn validate_settings(_s: String, _j: String) -> Result<(), String> {
        Ok(())
    }
}

export!(P);
