//! Log output: Flink's messages, on standard error, with timestamps.
//!
//! The level comes from `FLOE_LOG` (e.g. `FLOE_LOG=debug`), default `info`.

use std::sync::Once;

static INIT: Once = Once::new();

/// Installs the log subscriber once per process (a no-op if one is already set).
pub fn init() {
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("FLOE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(true)
            .try_init();
    });
}
