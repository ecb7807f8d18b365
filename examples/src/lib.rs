//! Runnable Floe jobs: see `src/bin`.
