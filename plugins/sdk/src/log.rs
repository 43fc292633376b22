//! Writing to the router's log, tagged with tenant, plugin and call. The
//! macros take `format!` arguments: `switchboard_plugin::info!("{ext} logged in")`.
//! `println!` works too (it is logged at info), but carries no level.

pub use crate::host::Level;

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    crate::host::log(level, message);
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, &format!($($arg)*)) };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, &format!($($arg)*)) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, &format!($($arg)*)) };
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, &format!($($arg)*)) };
}
