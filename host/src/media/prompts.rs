//! The router's recordings (8 kHz mono 16-bit WAV in `prompts/`, made by
//! `prompts/generate.sh` with espeak-ng and sox) and the check every WAV
//! must pass, built in or uploaded.

use std::collections::HashMap;
use std::sync::Arc;

/// Samples of one recording (8 kHz, 16-bit linear).
pub type Samples = Arc<[i16]>;

/// The built-in recordings by name; `digit-0` ... `digit-9` read numbers.
const BUILT_IN: &[(&str, &[u8])] = &[
    ("enter-account", include_bytes!("prompts/enter-account.wav")),
    ("enter-pin", include_bytes!("prompts/enter-pin.wav")),
    ("logged-in-as", include_bytes!("prompts/logged-in-as.wav")),
    ("logged-out", include_bytes!("prompts/logged-out.wav")),
    ("wrong-pin", include_bytes!("prompts/wrong-pin.wav")),
    ("not-hotdesk", include_bytes!("prompts/not-hotdesk.wav")),
    ("locked", include_bytes!("prompts/locked.wav")),
    ("status-set", include_bytes!("prompts/status-set.wav")),
    ("try-again", include_bytes!("prompts/try-again.wav")),
    ("goodbye", include_bytes!("prompts/goodbye.wav")),
    ("digit-0", include_bytes!("prompts/digit-0.wav")),
    ("digit-1", include_bytes!("prompts/digit-1.wav")),
    ("digit-2", include_bytes!("prompts/digit-2.wav")),
    ("digit-3", include_bytes!("prompts/digit-3.wav")),
    ("digit-4", include_bytes!("prompts/digit-4.wav")),
    ("digit-5", include_bytes!("prompts/digit-5.wav")),
    ("digit-6", include_bytes!("prompts/digit-6.wav")),
    ("digit-7", include_bytes!("prompts/digit-7.wav")),
    ("digit-8", include_bytes!("prompts/digit-8.wav")),
    ("digit-9", include_bytes!("prompts/digit-9.wav")),
];

/// The longest recording accepted (seconds).
pub const MAX_SECONDS: u32 = 30;

/// Reads a WAV that the router can play as it is: RIFF PCM, 8000 Hz, one
/// channel, 16-bit integers, at most [`MAX_SECONDS`]. The error names what
/// is wrong.
pub fn parse_wav(bytes: &[u8]) -> Result<Vec<i16>, String> {
    let reader = hound::WavReader::new(bytes).map_err(|e| format!("not a WAV file: {e}"))?;
    let spec = reader.spec();
    if spec.sample_rate != 8000 {
        return Err(format!("{} Hz; prompts are 8000 Hz", spec.sample_rate));
    }
    if spec.channels != 1 {
        return Err(format!("{} channels; prompts are mono", spec.channels));
    }
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(format!(
            "{}-bit {:?} samples; prompts are 16-bit PCM",
            spec.bits_per_sample, spec.sample_format
        ));
    }
    if reader.duration() > MAX_SECONDS * 8000 {
        return Err(format!("longer than {MAX_SECONDS} s"));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("broken WAV data: {e}"))
}

/// Whether `name` is a prompt a tenant may replace: a recording plugins
/// name, or a digit read out (`digit-0` ... `digit-9`).
pub fn replaceable(name: &str) -> bool {
    crate::pipeline::RECORDINGS.contains(&name)
        || name
            .strip_prefix("digit-")
            .is_some_and(|d| d.len() == 1 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Why an upload is refused.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// Not a prompt name.
    #[error("`{0}` is not a prompt: one of the router's recordings or digit-0 to digit-9")]
    Name(String),
    /// Over `media.max_prompt_kib`.
    #[error("the recording is over the limit of {0} KiB")]
    TooBig(usize),
    /// Not a WAV the router plays.
    #[error("{0}")]
    Format(String),
    /// The database failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// One uploaded prompt, as listed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TenantPrompt {
    /// The prompt it replaces.
    pub name: String,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// Size of the WAV in bytes.
    pub bytes: u64,
    /// When it was uploaded (unix ms).
    pub updated_at: i64,
}

/// A tenant's uploads in use by a call: name -> samples.
pub type Overrides = HashMap<String, Samples>;

/// Every recording the router has: the built-in ones, decoded once at
/// start, and tenants' uploads, decoded when first used and kept by upload
/// time (so every node picks up a new upload at the next call, from the
/// database they share).
#[derive(Debug)]
pub struct Library {
    built_in: HashMap<&'static str, Samples>,
    uploaded: parking_lot::Mutex<HashMap<(i64, String), (i64, Samples)>>,
}

impl Library {
    /// Decodes the built-in recordings. They are checked by a test, so a
    /// bad one is a build defect: it is left out (logged), not a panic.
    pub fn built_in() -> Library {
        let mut built_in = HashMap::new();
        for (name, bytes) in BUILT_IN {
            match parse_wav(bytes) {
                Ok(s) => {
                    built_in.insert(*name, Samples::from(s));
                }
                Err(e) => tracing::error!(prompt = name, error = %e, "built-in prompt unusable"),
            }
        }
        Library {
            built_in,
            uploaded: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Checks and stores a tenant's recording of `name` (replacing any).
    pub async fn upload(
        &self,
        db: &crate::store::Store,
        tenant_id: i64,
        name: &str,
        wav: &[u8],
        max_kib: usize,
    ) -> Result<TenantPrompt, PromptError> {
        if !replaceable(name) {
            return Err(PromptError::Name(name.chars().take(40).collect()));
        }
        if wav.len() > max_kib * 1024 {
            return Err(PromptError::TooBig(max_kib));
        }
        let samples = parse_wav(wav).map_err(PromptError::Format)?;
        let now = crate::store::now_ms();
        let duration_ms = samples.len() as u64 / 8;
        // One statement: the old recording stays until the new one is in.
        sqlx::query(
            "INSERT INTO tenant_prompts (tenant_id, name, duration_ms, wav, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET duration_ms = excluded.duration_ms, wav = excluded.wav, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(duration_ms as i64)
        .bind(wav.to_vec())
        .bind(now)
        .execute(db.pool())
        .await?;
        self.uploaded
            .lock()
            .insert((tenant_id, name.to_owned()), (now, Samples::from(samples)));
        Ok(TenantPrompt {
            name: name.to_owned(),
            duration_ms,
            bytes: wav.len() as u64,
            updated_at: now,
        })
    }

    /// Deletes a tenant's recording; whether there was one.
    pub async fn remove(
        &self,
        db: &crate::store::Store,
        tenant_id: i64,
        name: &str,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query("DELETE FROM tenant_prompts WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .execute(db.pool())
            .await?;
        self.uploaded.lock().remove(&(tenant_id, name.to_owned()));
        Ok(r.rows_affected() > 0)
    }

    /// A tenant's uploads, listed.
    pub async fn list(
        &self,
        db: &crate::store::Store,
        tenant_id: i64,
    ) -> Result<Vec<TenantPrompt>, sqlx::Error> {
        use sqlx::Row;
        // The recordings themselves are not read to list them.
        let rows = sqlx::query(
            "SELECT name, duration_ms, CAST(LENGTH(wav) AS BIGINT) AS bytes, updated_at FROM tenant_prompts \
             WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant_id)
        .fetch_all(db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TenantPrompt {
                    name: r.try_get("name")?,
                    duration_ms: u64::try_from(r.try_get::<i64, _>("duration_ms")?).unwrap_or(0),
                    bytes: u64::try_from(r.try_get::<i64, _>("bytes")?).unwrap_or(0),
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The tenant's uploads for one call: read their upload times, decode
    /// only what changed since this node last did. On a database error the
    /// call goes on with the router's own recordings.
    pub async fn overrides(&self, db: &crate::store::Store, tenant_id: i64) -> Overrides {
        use sqlx::Row;
        let rows =
            match sqlx::query("SELECT name, updated_at FROM tenant_prompts WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(db.pool())
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(tenant = tenant_id, error = %e, "reading a tenant's prompts");
                    return Overrides::new();
                }
            };
        let mut out = Overrides::new();
        for r in rows {
            let (Ok(name), Ok(at)) = (
                r.try_get::<String, _>("name"),
                r.try_get::<i64, _>("updated_at"),
            ) else {
                continue;
            };
            let key = (tenant_id, name.clone());
            let cached = self
                .uploaded
                .lock()
                .get(&key)
                .filter(|(t, _)| *t == at)
                .map(|(_, s)| s.clone());
            let samples = match cached {
                Some(s) => s,
                None => {
                    let wav: Result<Vec<u8>, _> = sqlx::query_scalar(
                        "SELECT wav FROM tenant_prompts WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(tenant_id)
                    .bind(&name)
                    .fetch_one(db.pool())
                    .await;
                    let Some(s) = wav.ok().and_then(|w| parse_wav(&w).ok()) else {
                        continue;
                    };
                    let s = Samples::from(s);
                    self.uploaded.lock().insert(key, (at, s.clone()));
                    s
                }
            };
            out.insert(name, samples);
        }
        out
    }

    /// A built-in recording.
    pub fn get(&self, name: &str) -> Option<Samples> {
        self.built_in.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_prompt_is_8khz_mono_16_bit_and_short() {
        for (name, bytes) in BUILT_IN {
            let s = parse_wav(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !s.is_empty() && s.len() < 6 * 8000,
                "{name}: {} samples",
                s.len()
            );
        }
    }

    #[test]
    fn every_recording_a_plugin_may_name_is_built_in() {
        let lib = Library::built_in();
        for name in crate::pipeline::RECORDINGS {
            assert!(lib.get(name).is_some(), "{name}");
        }
    }

    fn wav(rate: u32, channels: u16, bits: u16) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for _ in 0..800 {
            if bits == 16 {
                w.write_sample(0i16).unwrap();
            } else {
                w.write_sample(0i8).unwrap();
            }
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn a_wav_at_another_rate_is_refused_naming_the_rate() {
        let e = parse_wav(&wav(16000, 1, 16)).unwrap_err();
        assert!(e.contains("16000 Hz"), "{e}");
    }

    #[test]
    fn a_stereo_or_8_bit_wav_is_refused() {
        assert!(parse_wav(&wav(8000, 2, 16)).unwrap_err().contains("mono"));
        assert!(parse_wav(&wav(8000, 1, 8)).unwrap_err().contains("16-bit"));
    }

    #[test]
    fn something_else_is_not_a_wav() {
        assert!(parse_wav(b"RIFFnope").unwrap_err().contains("not a WAV"));
    }
}
