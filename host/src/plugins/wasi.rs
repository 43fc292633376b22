//! Benign WASI: the interfaces std runtimes need (Rust's `println!`,
//! `panic!`, `HashMap::new`, `SystemTime::now`, and the JavaScript and
//! Python runtimes' start-up), bound to harmless host behaviour:
//!
//! - stdout and stderr are captured per call (at most [`OUTPUT_CAP`] bytes)
//!   and written to the router's log with tenant, plugin and call; a
//!   panic's message, which std prints to stderr, becomes the fault reason;
//! - stdin is empty, the environment and arguments are empty, there is no
//!   terminal;
//! - `exit` ends the call as a fault naming the status;
//! - the wall clock is the tenant clock (the one `host.now-ms` reads), the
//!   monotonic clock the host's; waiting on a clock returns at once (a
//!   plugin cannot sleep past its deadline anyway);
//! - randomness comes from the host's generator (seeded by the OS).
//!
//! Files and sockets are not provided: their imports are stubbed as traps,
//! so a plugin that calls them faults, and the fault names the call.
//!
//! Implemented here rather than with `wasmtime-wasi`, whose synchronous
//! bindings block on a Tokio runtime inside the call, which plugin calls
//! (made from the router's async tasks) must never do.

use wasmtime::component::{Resource, ResourceTable};

wasmtime::component::bindgen!({
    path: "wit-wasi",
    world: "switchboard:benign/benign",
    with: {
        "wasi:io/poll.pollable": Pollable,
        "wasi:io/streams.input-stream": InputStream,
        "wasi:io/streams.output-stream": OutputStream,
        "wasi:io/error.error": IoError,
        "wasi:cli/terminal-input.terminal-input": Terminal,
        "wasi:cli/terminal-output.terminal-output": Terminal,
    },
    imports: { default: trappable },
});

use self::wasi::io::streams::StreamError;
pub(super) use self::Benign as World;

/// Bytes of stdout and stderr kept per call; the rest is counted, not kept.
pub const OUTPUT_CAP: usize = 8 << 10;
/// WASI handles (streams, pollables) one instance may hold at once.
const MAX_HANDLES: usize = 256;
/// Bytes of stderr's end kept for a panic's message.
const TAIL: usize = 1024;
/// Largest buffer of random bytes one call may ask for.
const RANDOM_CAP: u64 = 1 << 20;

/// A pollable: every one is ready at once.
pub struct Pollable;
/// stdin: always at its end.
pub struct InputStream;
/// stdout or stderr of the call.
pub struct OutputStream(Which);
/// The error resource (never created: streams report `closed`).
pub struct IoError;
/// A terminal (never created: there is none).
pub struct Terminal;

/// Which output a stream writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

/// What a call printed, and the resources its WASI calls hold.
#[derive(Default)]
pub struct Wasi {
    table: ResourceTable,
    /// Handles the guest holds now (at most [`MAX_HANDLES`]).
    live: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// The last bytes of stderr, kept apart from the cap: a panic's
    /// message comes last, after whatever filled the buffers.
    stderr_tail: Vec<u8>,
    dropped: usize,
    /// The tenant clock, read once per call by the runtime.
    pub(super) wall_ms: i64,
}

impl std::fmt::Debug for Wasi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wasi")
            .field("stdout", &self.stdout.len())
            .field("stderr", &self.stderr.len())
            .finish()
    }
}

impl Wasi {
    /// The message of a panic the call printed last, if it did.
    pub(super) fn panic_message(&self) -> Option<String> {
        panic_message(&String::from_utf8_lossy(&self.stderr_tail))
    }

    /// Takes what the call printed: (stdout, stderr, bytes dropped).
    pub(super) fn take_output(&mut self) -> (String, String, usize) {
        self.stderr_tail.clear();
        let out = String::from_utf8_lossy(&std::mem::take(&mut self.stdout)).into_owned();
        let err = String::from_utf8_lossy(&std::mem::take(&mut self.stderr)).into_owned();
        (out, err, std::mem::take(&mut self.dropped))
    }

    fn write(&mut self, which: Which, bytes: &[u8]) {
        if which == Which::Err {
            self.stderr_tail
                .extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
            let extra = self.stderr_tail.len().saturating_sub(TAIL);
            self.stderr_tail.drain(..extra);
        }
        let room = OUTPUT_CAP.saturating_sub(self.stdout.len() + self.stderr.len());
        let keep = bytes.len().min(room);
        let buf = match which {
            Which::Out => &mut self.stdout,
            Which::Err => &mut self.stderr,
        };
        buf.extend_from_slice(&bytes[..keep]);
        self.dropped += bytes.len() - keep;
    }

    fn pollable(&mut self) -> wasmtime::Result<Resource<Pollable>> {
        self.push(Pollable)
    }

    /// A new handle for the guest, refused past [`MAX_HANDLES`] (instances
    /// are reused, so a guest that never drops them would grow forever).
    fn push<R: Send + 'static>(&mut self, r: R) -> wasmtime::Result<Resource<R>> {
        if self.live >= MAX_HANDLES {
            return Err(wasmtime::Error::msg(format!(
                "holds {MAX_HANDLES} WASI handles (streams, pollables) without dropping them"
            )));
        }
        self.live += 1;
        Ok(self.table.push(r)?)
    }

    fn delete<R: 'static>(&mut self, r: Resource<R>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.live = self.live.saturating_sub(1);
        Ok(())
    }
}

/// The interfaces of [`World`], without their versions: an import of any
/// 0.2 version of them is served by ours (0.2.12; wasmtime matches
/// semver-compatible versions).
const PROVIDED: [&str; 18] = [
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Whether an import is served by [`World`].
fn provided(import: &str) -> bool {
    import.split_once("@0.2.").is_some_and(|(base, patch)| {
        PROVIDED.contains(&base) && !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Defines every other WASI import of `component` (files, sockets) as a
/// function that traps naming itself, so std builds that carry them load
/// and fault only if they really call one. (wasmtime's own
/// `define_unknown_imports_as_traps` would also shadow the 0.2.0 and 0.2.6
/// names of what [`World`] serves at 0.2.12.)
pub(super) fn stub_the_rest<T: 'static>(
    engine: &wasmtime::Engine,
    linker: &mut wasmtime::component::Linker<T>,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        if !name.starts_with("wasi:") || provided(name) {
            continue;
        }
        let ComponentItem::ComponentInstance(inst) = item.ty else {
            continue;
        };
        let mut instance = linker.instance(name)?;
        for (export, e) in inst.exports(engine) {
            match e.ty {
                // Runtimes look for preopened directories as they start:
                // there are none, which is an answer, not a fault.
                ComponentItem::ComponentFunc(_)
                    if name.starts_with("wasi:filesystem/preopens@")
                        && export == "get-directories" =>
                {
                    instance.func_new(export, |_, _, _, results| {
                        if let Some(r) = results.first_mut() {
                            *r = wasmtime::component::Val::List(Vec::new());
                        }
                        Ok(())
                    })?;
                }
                ComponentItem::ComponentFunc(_) => {
                    let full = format!("{name}#{export}");
                    instance.func_new(export, move |_, _, _, _| {
                        Err(wasmtime::Error::msg(format!(
                            "unknown import: `{full}` has not been defined"
                        )))
                    })?;
                }
                ComponentItem::Resource(_) => {
                    // A stubbed interface names ours too (`use
                    // wasi:io/streams.{input-stream}`): those must be the
                    // very types the streams of `World` have.
                    use wasmtime::component::ResourceType;
                    let ty = match export {
                        "input-stream" => ResourceType::host::<InputStream>(),
                        "output-stream" => ResourceType::host::<OutputStream>(),
                        "pollable" => ResourceType::host::<Pollable>(),
                        "error" => ResourceType::host::<IoError>(),
                        "terminal-input" | "terminal-output" => ResourceType::host::<Terminal>(),
                        _ => ResourceType::host::<Stubbed>(),
                    };
                    instance.resource(export, ty, |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The host type of a stubbed import's resources (never created).
struct Stubbed;

/// The message of a Rust panic printed to stderr, if there is one.
pub fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.find("panicked at ")?;
    let rest = &stderr[at..];
    // `panicked at src/lib.rs:10:5:\nthe message\nnote: ...`
    let (_, message) = rest.split_once(":\n")?;
    let message: String = message
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect::<Vec<_>>()
        .join(" ");
    Some(message.trim().chars().take(300).collect())
}

/// Gives the runtime's per-call state its WASI.
pub trait HasWasi {
    /// The call's WASI state.
    fn wasi(&mut self) -> &mut Wasi;
}

impl wasi::cli::environment::Host for super::CallState {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(None)
    }
}

impl wasi::cli::exit::Host for super::CallState {
    fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
        Err(wasmtime::Error::msg(match status {
            Ok(()) => "exited (status ok) instead of returning a decision",
            Err(()) => "exited with an error status",
        }))
    }
    fn exit_with_code(&mut self, code: u8) -> wasmtime::Result<()> {
        Err(wasmtime::Error::msg(format!(
            "exited with code {code} instead of returning a decision"
        )))
    }
}

impl wasi::cli::stdin::Host for super::CallState {
    fn get_stdin(&mut self) -> wasmtime::Result<Resource<InputStream>> {
        self.wasi().push(InputStream)
    }
}

impl wasi::cli::stdout::Host for super::CallState {
    fn get_stdout(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        self.wasi().push(OutputStream(Which::Out))
    }
}

impl wasi::cli::stderr::Host for super::CallState {
    fn get_stderr(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        self.wasi().push(OutputStream(Which::Err))
    }
}

impl wasi::cli::terminal_input::Host for super::CallState {}
impl wasi::cli::terminal_input::HostTerminalInput for super::CallState {
    fn drop(&mut self, rep: Resource<Terminal>) -> wasmtime::Result<()> {
        self.wasi().delete(rep)?;
        Ok(())
    }
}
impl wasi::cli::terminal_output::Host for super::CallState {}
impl wasi::cli::terminal_output::HostTerminalOutput for super::CallState {
    fn drop(&mut self, rep: Resource<Terminal>) -> wasmtime::Result<()> {
        self.wasi().delete(rep)?;
        Ok(())
    }
}
impl wasi::cli::terminal_stdin::Host for super::CallState {
    fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<Terminal>>> {
        Ok(None)
    }
}
impl wasi::cli::terminal_stdout::Host for super::CallState {
    fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<Terminal>>> {
        Ok(None)
    }
}
impl wasi::cli::terminal_stderr::Host for super::CallState {
    fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<Terminal>>> {
        Ok(None)
    }
}

impl wasi::io::error::Host for super::CallState {}
impl wasi::io::error::HostError for super::CallState {
    fn to_debug_string(&mut self, _rep: Resource<IoError>) -> wasmtime::Result<String> {
        Ok("no error".to_owned())
    }
    fn drop(&mut self, rep: Resource<IoError>) -> wasmtime::Result<()> {
        self.wasi().delete(rep)?;
        Ok(())
    }
}

impl wasi::io::poll::Host for super::CallState {
    fn poll(&mut self, which: Vec<Resource<Pollable>>) -> wasmtime::Result<Vec<u32>> {
        // Everything is ready; the list is bounded by what the guest holds.
        Ok((0..which.len() as u32).collect())
    }
}
impl wasi::io::poll::HostPollable for super::CallState {
    fn ready(&mut self, _rep: Resource<Pollable>) -> wasmtime::Result<bool> {
        Ok(true)
    }
    fn block(&mut self, _rep: Resource<Pollable>) -> wasmtime::Result<()> {
        Ok(())
    }
    fn drop(&mut self, rep: Resource<Pollable>) -> wasmtime::Result<()> {
        self.wasi().delete(rep)?;
        Ok(())
    }
}

impl wasi::io::streams::Host for super::CallState {}

impl wasi::io::streams::HostInputStream for super::CallState {
    fn read(
        &mut self,
        _rep: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        Ok(Err(StreamError::Closed))
    }
    fn blocking_read(
        &mut self,
        _rep: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        Ok(Err(StreamError::Closed))
    }
    fn skip(
        &mut self,
        _rep: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }
    fn blocking_skip(
        &mut self,
        _rep: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }
    fn subscribe(&mut self, _rep: Resource<InputStream>) -> wasmtime::Result<Resource<Pollable>> {
        self.wasi().pollable()
    }
    fn drop(&mut self, rep: Resource<InputStream>) -> wasmtime::Result<()> {
        self.wasi().delete(rep)?;
        Ok(())
    }
}

impl wasi::io::streams::HostOutputStream for super::CallState {
    fn check_write(
        &mut self,
        _rep: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Ok(4096))
    }
    fn write(
        &mut self,
        rep: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let which = self.wasi().table.get(&rep)?.0;
        self.wasi().write(which, &contents);
        Ok(Ok(()))
    }
    fn blocking_write_and_flush(
        &mut self,
        rep: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.write(rep, contents)
    }
    fn flush(&mut self, _rep: Resource<OutputStream>) -> wasmtime::Result<Result<(), StreamError>> {
        Ok(Ok(()))
    }
    fn blocking_flush(
        &mut self,
        _rep: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        Ok(Ok(()))
    }
    fn subscribe(&mut self, _rep: Resource<OutputStream>) -> wasmtime::Result<Resource<Pollable>> {
        self.wasi().pollable()
    }
    fn write_zeroes(
        &mut self,
        rep: Resource<OutputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let which = self.wasi().table.get(&rep)?.0;
        let len = (len as usize).min(OUTPUT_CAP);
        self.wasi().write(which, &vec![0; len]);
        Ok(Ok(()))
    }
    fn blocking_write_zeroes_and_flush(
        &mut self,
        rep: Resource<OutputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.write_zeroes(rep, len)
    }
    fn splice(
        &mut self,
        _rep: Resource<OutputStream>,
        _src: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }
    fn blocking_splice(
        &mut self,
        _rep: Resource<OutputStream>,
        _src: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }
    fn drop(&mut self, rep: Resource<OutputStream>) -> wasmtime::Result<()> {
        self.wasi().delete(rep)?;
        Ok(())
    }
}

/// The monotonic clock's zero: the first time a plugin read it.
fn epoch() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

impl wasi::clocks::monotonic_clock::Host for super::CallState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(epoch().elapsed().as_nanos() as u64)
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }
    fn subscribe_instant(&mut self, _when: u64) -> wasmtime::Result<Resource<Pollable>> {
        self.wasi().pollable()
    }
    fn subscribe_duration(&mut self, _when: u64) -> wasmtime::Result<Resource<Pollable>> {
        self.wasi().pollable()
    }
}

impl wasi::clocks::wall_clock::Host for super::CallState {
    fn now(&mut self) -> wasmtime::Result<wasi::clocks::wall_clock::Datetime> {
        let ms = self.wasi().wall_ms.max(0);
        Ok(wasi::clocks::wall_clock::Datetime {
            seconds: (ms / 1000) as u64,
            nanoseconds: ((ms % 1000) * 1_000_000) as u32,
        })
    }
    fn resolution(&mut self) -> wasmtime::Result<wasi::clocks::wall_clock::Datetime> {
        Ok(wasi::clocks::wall_clock::Datetime {
            seconds: 0,
            nanoseconds: 1_000_000,
        })
    }
}

fn random_bytes(len: u64) -> wasmtime::Result<Vec<u8>> {
    if len > RANDOM_CAP {
        return Err(wasmtime::Error::msg(format!(
            "asked for {len} random bytes; at most {RANDOM_CAP} per call"
        )));
    }
    let mut v = vec![0u8; len as usize];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut v);
    Ok(v)
}

impl wasi::random::random::Host for super::CallState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        random_bytes(len)
    }
    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(rand::random())
    }
}

impl wasi::random::insecure::Host for super::CallState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        random_bytes(len)
    }
    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(rand::random())
    }
}

impl wasi::random::insecure_seed::Host for super::CallState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok((rand::random(), rand::random()))
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn a_rust_panic_on_stderr_gives_its_message() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nno route for 2002\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("no route for 2002"));
    }

    #[test]
    fn only_plain_0_2_versions_of_our_interfaces_are_served() {
        assert!(super::provided("wasi:cli/stdout@0.2.0"));
        assert!(super::provided("wasi:io/streams@0.2.6"));
        assert!(!super::provided("wasi:io/streams@0.2.0-rc-2023-11-10"));
        assert!(!super::provided("wasi:filesystem/types@0.2.6"));
        assert!(!super::provided("wasi:cli/stdout@0.3.0"));
    }

    #[test]
    fn stderr_without_a_panic_gives_none() {
        assert_eq!(panic_message("just a warning\n"), None);
    }
}
