//! Restart strategies, counted exactly as Flink's `RestartBackoffTimeStrategy`
//! implementations (`org.apache.flink.runtime.executiongraph.failover`, Flink 1.19+/2.x).
//!
//! [`RestartStrategy`] is the configuration (what the user asked for, cheap to clone and
//! compare); [`RestartBackoff`] is the stateful counter the job manager keeps for one job.
//! On every task failure the job manager calls [`RestartBackoff::notify_failure`], then asks
//! [`RestartBackoff::can_restart`] and, if so, waits [`RestartBackoff::backoff_time`].
//! When `can_restart` is false the job is FAILED and the message names the strategy through
//! its `Display`, as Flink's "Recovery is suppressed by ..." does.
//!
//! Time is passed in by the caller (`now`), never read from a clock here, so the counting
//! can be unit-tested with synthetic instants.
//!
//! ```
//! use floe::jobmanager::restart::RestartStrategy;
//! use std::time::{Duration, Instant};
//!
//! let mut backoff = RestartStrategy::fixed_delay(3, Duration::from_secs(2)).backoff();
//! let now = Instant::now();
//! for _ in 0..3 {
//!     backoff.notify_failure(now);
//!     assert!(backoff.can_restart());
//!     assert_eq!(backoff.backoff_time(), Duration::from_secs(2));
//! }
//! backoff.notify_failure(now);
//! assert!(!backoff.can_restart());
//! assert_eq!(
//!     format!("Recovery is suppressed by {backoff}"),
//!     "Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=2000)"
//! );
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{format_duration, keys, ConfigError, Configuration};

const KEY_TYPE: &str = keys::RESTART_STRATEGY_TYPE.name();
const KEY_FIXED_ATTEMPTS: &str = keys::FIXED_DELAY_ATTEMPTS.name();
const KEY_FIXED_DELAY: &str = keys::FIXED_DELAY_DELAY.name();
const KEY_FR_MAX_FAILURES: &str = keys::FAILURE_RATE_MAX_FAILURES.name();
const KEY_FR_INTERVAL: &str = keys::FAILURE_RATE_INTERVAL.name();
const KEY_FR_DELAY: &str = keys::FAILURE_RATE_DELAY.name();
const KEY_EXP_INITIAL: &str = keys::EXPONENTIAL_DELAY_INITIAL_BACKOFF.name();
const KEY_EXP_MAX: &str = keys::EXPONENTIAL_DELAY_MAX_BACKOFF.name();
const KEY_EXP_MULTIPLIER: &str = keys::EXPONENTIAL_DELAY_MULTIPLIER.name();
const KEY_EXP_RESET: &str = keys::EXPONENTIAL_DELAY_RESET_THRESHOLD.name();
const KEY_EXP_JITTER: &str = keys::EXPONENTIAL_DELAY_JITTER.name();
const KEY_EXP_ATTEMPTS: &str = keys::EXPONENTIAL_DELAY_ATTEMPTS.name();

/// How a job reacts to task failures.
///
/// ```
/// use floe::jobmanager::restart::RestartStrategy;
/// use std::time::Duration;
/// let s = RestartStrategy::fixed_delay(3, Duration::from_secs(2));
/// assert_eq!(
///     s,
///     RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_secs(2) }
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum RestartStrategy {
    /// Never restart: the first failure fails the job.
    None,
    /// Restart up to `attempts` times in total, waiting `delay` before each restart.
    FixedDelay {
        /// Restarts allowed over the job's lifetime; failure `attempts + 1` is terminal.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart unless more than `max_failures_per_interval` failures fall within `interval`.
    FailureRate {
        /// Failures tolerated within one interval.
        max_failures_per_interval: u32,
        /// Length of the sliding window failures are counted in.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart with a backoff that grows by `multiplier` per attempt up to `max_backoff`, and
    /// returns to `initial_backoff` after `reset_threshold` without failures.
    ExponentialDelay {
        /// Backoff before the first restart.
        initial_backoff: Duration,
        /// Upper bound of the backoff.
        max_backoff: Duration,
        /// Growth factor per attempt.
        multiplier: f64,
        /// Failure-free time after a restart that resets the backoff.
        reset_threshold: Duration,
        /// Random spread as a portion of the backoff (0.0 to 1.0).
        jitter: f64,
        /// Restarts allowed between two resets; `None` is unlimited.
        attempts_before_reset: Option<u32>,
    },
}

impl RestartStrategy {
    /// No restarts.
    pub fn none() -> Self {
        RestartStrategy::None
    }

    /// Restart at most `attempts` times, `delay` apart (Flink's `fixedDelayRestart`).
    pub fn fixed_delay(attempts: u32, delay: Duration) -> Self {
        RestartStrategy::FixedDelay { attempts, delay }
    }

    /// Restart while at most `max_failures_per_interval` failures happen per `interval`.
    pub fn failure_rate(
        max_failures_per_interval: u32,
        interval: Duration,
        delay: Duration,
    ) -> Self {
        RestartStrategy::FailureRate {
            max_failures_per_interval,
            interval,
            delay,
        }
    }

    /// Exponential delay with Flink 1.19+ defaults: initial 1 s, max 1 min, multiplier 1.5,
    /// reset threshold 1 h, jitter 0.1, unlimited attempts.
    ///
    /// ```
    /// use floe::jobmanager::restart::RestartStrategy;
    /// use floe::config::Configuration;
    /// // What a job with checkpointing and no explicit strategy gets.
    /// assert_eq!(
    ///     RestartStrategy::from_config(&Configuration::new(), true).unwrap(),
    ///     RestartStrategy::exponential_delay()
    /// );
    /// ```
    pub fn exponential_delay() -> Self {
        RestartStrategy::ExponentialDelay {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 1.5,
            reset_threshold: Duration::from_secs(3600),
            jitter: 0.1,
            attempts_before_reset: None,
        }
    }

    /// Reads `restart-strategy.*` from the configuration.
    ///
    /// When `restart-strategy.type` is unset the default depends on `checkpointing_enabled`,
    /// as in Flink ≥ 1.19: exponential-delay when on, none when off. Like Flink's
    /// `RestartBackoffTimeStrategyFactoryLoader`, that implicit exponential-delay uses the
    /// built-in defaults and ignores `restart-strategy.exponential-delay.*` keys; set the
    /// type explicitly to tune it.
    ///
    /// Values that Flink's strategy constructors would reject (e.g. an initial backoff above
    /// the maximum) are reported as [`ConfigError::InvalidValue`].
    ///
    /// ```
    /// use floe::config::Configuration;
    /// use floe::jobmanager::restart::RestartStrategy;
    /// use std::time::Duration;
    ///
    /// let mut conf = Configuration::new();
    /// conf.set("restart-strategy", "fixeddelay").unwrap();
    /// conf.set("restart-strategy.fixed-delay.attempts", "3").unwrap();
    /// conf.set("restart-strategy.fixed-delay.delay", "2 s").unwrap();
    /// assert_eq!(
    ///     RestartStrategy::from_config(&conf, true).unwrap(),
    ///     RestartStrategy::fixed_delay(3, Duration::from_secs(2))
    /// );
    /// assert_eq!(RestartStrategy::from_config(&Configuration::new(), false).unwrap(), RestartStrategy::None);
    /// ```
    pub fn from_config(
        conf: &Configuration,
        checkpointing_enabled: bool,
    ) -> Result<Self, ConfigError> {
        let Some(kind) = conf.get_string(KEY_TYPE)? else {
            return Ok(if checkpointing_enabled {
                RestartStrategy::exponential_delay()
            } else {
                RestartStrategy::None
            });
        };
        match kind.as_str() {
            "none" => Ok(RestartStrategy::None),
            "fixed-delay" => Ok(RestartStrategy::FixedDelay {
                attempts: required(conf.get_u32(KEY_FIXED_ATTEMPTS)?, KEY_FIXED_ATTEMPTS)?,
                delay: required(conf.get_duration(KEY_FIXED_DELAY)?, KEY_FIXED_DELAY)?,
            }),
            "failure-rate" => {
                let max_failures =
                    required(conf.get_u32(KEY_FR_MAX_FAILURES)?, KEY_FR_MAX_FAILURES)?;
                let interval = required(conf.get_duration(KEY_FR_INTERVAL)?, KEY_FR_INTERVAL)?;
                let delay = required(conf.get_duration(KEY_FR_DELAY)?, KEY_FR_DELAY)?;
                // Flink: "Maximum number of restart attempts per time unit must be greater than 0."
                if max_failures == 0 {
                    return Err(invalid(conf, KEY_FR_MAX_FAILURES, "must be greater than 0"));
                }
                // Flink: "Failures interval must be greater than 0 ms."
                if interval.as_millis() == 0 {
                    return Err(invalid(conf, KEY_FR_INTERVAL, "must be greater than 0 ms"));
                }
                Ok(RestartStrategy::FailureRate {
                    max_failures_per_interval: max_failures,
                    interval,
                    delay,
                })
            }
            "exponential-delay" => {
                let initial = required(conf.get_duration(KEY_EXP_INITIAL)?, KEY_EXP_INITIAL)?;
                let max = required(conf.get_duration(KEY_EXP_MAX)?, KEY_EXP_MAX)?;
                let multiplier = required(conf.get_f64(KEY_EXP_MULTIPLIER)?, KEY_EXP_MULTIPLIER)?;
                let reset = required(conf.get_duration(KEY_EXP_RESET)?, KEY_EXP_RESET)?;
                let jitter = required(conf.get_f64(KEY_EXP_JITTER)?, KEY_EXP_JITTER)?;
                let attempts = conf.get_u32(KEY_EXP_ATTEMPTS)?;
                // The checks of Flink's ExponentialDelayRestartBackoffTimeStrategy constructor,
                // which works in whole milliseconds.
                if initial.as_millis() < 1 {
                    return Err(invalid(conf, KEY_EXP_INITIAL, "must be at least 1 ms"));
                }
                if max.as_millis() < 1 {
                    return Err(invalid(conf, KEY_EXP_MAX, "must be at least 1 ms"));
                }
                if initial.as_millis() > max.as_millis() {
                    let reason = format!(
                        "initial backoff cannot be higher than maximum backoff ({KEY_EXP_MAX} = {})",
                        format_duration(max)
                    );
                    return Err(invalid(conf, KEY_EXP_INITIAL, &reason));
                }
                if reset.as_millis() < 1 {
                    return Err(invalid(conf, KEY_EXP_RESET, "must be at least 1 ms"));
                }
                // Range checks repeated here because the getters accept values written by
                // `to_config` without validation, and a hand-built strategy may hold anything.
                // Written to also catch NaN, which compares false with everything.
                if multiplier.is_nan() || multiplier < 1.0 {
                    return Err(invalid(conf, KEY_EXP_MULTIPLIER, "must be at least 1.0"));
                }
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(invalid(conf, KEY_EXP_JITTER, "must be between 0.0 and 1.0"));
                }
                if attempts == Some(0) {
                    return Err(invalid(conf, KEY_EXP_ATTEMPTS, "must be at least 1"));
                }
                Ok(RestartStrategy::ExponentialDelay {
                    initial_backoff: initial,
                    max_backoff: max,
                    multiplier,
                    reset_threshold: reset,
                    jitter,
                    attempts_before_reset: attempts,
                })
            }
            // Unreachable through `Configuration::set`, which only stores listed values;
            // still an error rather than a panic.
            other => Err(ConfigError::InvalidValue {
                key: KEY_TYPE.to_string(),
                value: other.to_string(),
                reason: "expected one of none, fixed-delay, failure-rate, exponential-delay".into(),
            }),
        }
    }

    /// Writes this strategy into the `restart-strategy.*` keys, so that
    /// [`RestartStrategy::from_config`] reads back an equal strategy. Keys of other
    /// strategies are left untouched (they are ignored once the type is set).
    ///
    /// ```
    /// use floe::config::Configuration;
    /// use floe::jobmanager::restart::RestartStrategy;
    /// use std::time::Duration;
    /// let s = RestartStrategy::failure_rate(3, Duration::from_secs(300), Duration::from_secs(10));
    /// let mut conf = Configuration::new();
    /// s.to_config(&mut conf);
    /// assert_eq!(conf.get_raw("restart-strategy.failure-rate.failure-rate-interval"), Some("5 min"));
    /// assert_eq!(RestartStrategy::from_config(&conf, false).unwrap(), s);
    /// ```
    pub fn to_config(&self, conf: &mut Configuration) {
        // Unchecked: this method cannot fail, and a hand-built strategy with out-of-range
        // values should surface as an error on `from_config`, not vanish here.
        let mut put = |key: &str, value: String| conf.insert_unchecked(key, value);
        match self {
            RestartStrategy::None => put(KEY_TYPE, "none".into()),
            RestartStrategy::FixedDelay { attempts, delay } => {
                put(KEY_TYPE, "fixed-delay".into());
                put(KEY_FIXED_ATTEMPTS, attempts.to_string());
                put(KEY_FIXED_DELAY, format_duration(*delay));
            }
            RestartStrategy::FailureRate {
                max_failures_per_interval,
                interval,
                delay,
            } => {
                put(KEY_TYPE, "failure-rate".into());
                put(KEY_FR_MAX_FAILURES, max_failures_per_interval.to_string());
                put(KEY_FR_INTERVAL, format_duration(*interval));
                put(KEY_FR_DELAY, format_duration(*delay));
            }
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_threshold,
                jitter,
                attempts_before_reset,
            } => {
                put(KEY_TYPE, "exponential-delay".into());
                put(KEY_EXP_INITIAL, format_duration(*initial_backoff));
                put(KEY_EXP_MAX, format_duration(*max_backoff));
                // Rust's shortest round-trip float formatting parses back to the same f64.
                put(KEY_EXP_MULTIPLIER, multiplier.to_string());
                put(KEY_EXP_RESET, format_duration(*reset_threshold));
                put(KEY_EXP_JITTER, jitter.to_string());
                match attempts_before_reset {
                    Some(n) => put(KEY_EXP_ATTEMPTS, n.to_string()),
                    None => {
                        conf.remove(KEY_EXP_ATTEMPTS);
                    }
                }
            }
        }
    }

    /// A fresh stateful counter for one job. Jitter (exponential-delay only) is drawn from
    /// a generator seeded by the operating system.
    pub fn backoff(&self) -> Box<dyn RestartBackoff> {
        self.make_backoff(None)
    }

    /// Like [`RestartStrategy::backoff`], with jitter drawn from a generator seeded with
    /// `seed`, for reproducible tests and simulations.
    pub fn backoff_with_seed(&self, seed: u64) -> Box<dyn RestartBackoff> {
        self.make_backoff(Some(seed))
    }

    fn make_backoff(&self, seed: Option<u64>) -> Box<dyn RestartBackoff> {
        match self {
            RestartStrategy::None => Box::new(NoRestartBackoff),
            RestartStrategy::FixedDelay { attempts, delay } => {
                Box::new(FixedDelayBackoff::new(*attempts, *delay))
            }
            RestartStrategy::FailureRate {
                max_failures_per_interval,
                interval,
                delay,
            } => Box::new(FailureRateBackoff::new(
                *max_failures_per_interval,
                *interval,
                *delay,
            )),
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_threshold,
                jitter,
                attempts_before_reset,
            } => {
                let b = ExponentialDelayBackoff::new(
                    *initial_backoff,
                    *max_backoff,
                    *multiplier,
                    *reset_threshold,
                    *jitter,
                    *attempts_before_reset,
                );
                Box::new(match seed {
                    Some(s) => b.with_seed(s),
                    None => b,
                })
            }
        }
    }
}

/// Renders as the fresh Flink strategy object would (what Flink logs as "Using restart back
/// off time strategy ...").
impl fmt::Display for RestartStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Seeded so that printing never touches the OS entropy source.
        fmt::Display::fmt(&self.backoff_with_seed(0), f)
    }
}

fn required<T>(value: Option<T>, key: &str) -> Result<T, ConfigError> {
    // Every key read through here has a default in `config::OPTIONS`, so `None` means the
    // option table and this module disagree.
    value.ok_or_else(|| ConfigError::InvalidValue {
        key: key.to_string(),
        value: String::new(),
        reason: "a value is required".into(),
    })
}

fn invalid(conf: &Configuration, key: &str, reason: &str) -> ConfigError {
    let value = conf
        .get_raw(key)
        .map(str::to_string)
        .or_else(|| {
            crate::config::find_option(key)
                .and_then(|o| o.default)
                .map(str::to_string)
        })
        .unwrap_or_default();
    ConfigError::InvalidValue {
        key: key.to_string(),
        value,
        reason: reason.to_string(),
    }
}

/// Mirrors Flink's `RestartBackoffTimeStrategy`: `notify_failure` is called once per
/// task/job failure, then `can_restart` and `backoff_time` are asked.
///
/// `can_restart` and `backoff_time` answer as of the `now` passed to the latest
/// `notify_failure` (Flink reads its clock at that point; the job manager asks right after
/// notifying, so the two agree).
pub trait RestartBackoff: Send + fmt::Display {
    /// Records a failure that happened at `now`.
    fn notify_failure(&mut self, now: Instant);
    /// Whether the job may be restarted after the failures seen so far.
    fn can_restart(&self) -> bool;
    /// How long to wait before restarting.
    fn backoff_time(&self) -> Duration;
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Flink's `NoRestartBackoffTimeStrategy`: never restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoRestartBackoff;

impl RestartBackoff for NoRestartBackoff {
    fn notify_failure(&mut self, _now: Instant) {}
    fn can_restart(&self) -> bool {
        false
    }
    fn backoff_time(&self) -> Duration {
        Duration::ZERO
    }
}

impl fmt::Display for NoRestartBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoRestartBackoffTimeStrategy")
    }
}

/// Flink's `FixedDelayRestartBackoffTimeStrategy`: every failure counts, the counter never
/// resets, and restarting is allowed while `failures <= max attempts`.
///
/// ```
/// use floe::jobmanager::restart::{FixedDelayBackoff, RestartBackoff};
/// use std::time::{Duration, Instant};
/// let mut b = FixedDelayBackoff::new(1, Duration::from_millis(500));
/// b.notify_failure(Instant::now());
/// assert!(b.can_restart());
/// b.notify_failure(Instant::now());
/// assert!(!b.can_restart());
/// ```
#[derive(Clone, Debug)]
pub struct FixedDelayBackoff {
    max_attempts: u32,
    delay: Duration,
    // Wider than the limit so that counting past `u32::MAX` attempts cannot wrap.
    current_attempt: u64,
}

impl FixedDelayBackoff {
    /// A counter allowing `max_attempts` restarts, `delay` apart.
    pub fn new(max_attempts: u32, delay: Duration) -> Self {
        Self {
            max_attempts,
            delay,
            current_attempt: 0,
        }
    }
}

impl RestartBackoff for FixedDelayBackoff {
    fn notify_failure(&mut self, _now: Instant) {
        self.current_attempt = self.current_attempt.saturating_add(1);
    }
    fn can_restart(&self) -> bool {
        self.current_attempt <= u64::from(self.max_attempts)
    }
    fn backoff_time(&self) -> Duration {
        self.delay
    }
}

impl fmt::Display for FixedDelayBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts={}, backoffTimeMS={})",
            self.max_attempts,
            millis(self.delay)
        )
    }
}

/// Flink's `FailureRateRestartBackoffTimeStrategy`: keeps the timestamps of the last
/// `max_failures + 1` failures; once that many are held, restarting is allowed only if the
/// oldest is more than `interval` before the newest.
///
/// ```
/// use floe::jobmanager::restart::{FailureRateBackoff, RestartBackoff};
/// use std::time::{Duration, Instant};
/// let mut b = FailureRateBackoff::new(1, Duration::from_secs(60), Duration::from_secs(1));
/// let t0 = Instant::now();
/// b.notify_failure(t0);
/// assert!(b.can_restart());
/// b.notify_failure(t0 + Duration::from_secs(10)); // 2 failures within a minute
/// assert!(!b.can_restart());
/// ```
#[derive(Clone, Debug)]
pub struct FailureRateBackoff {
    max_failures: u32,
    interval: Duration,
    delay: Duration,
    failures: VecDeque<Instant>,
}

impl FailureRateBackoff {
    /// A counter allowing `max_failures_per_interval` failures per `interval`, restarting
    /// after `delay`.
    pub fn new(max_failures_per_interval: u32, interval: Duration, delay: Duration) -> Self {
        Self {
            max_failures: max_failures_per_interval,
            interval,
            delay,
            // Not `with_capacity(max + 1)`: a huge configured maximum must not allocate up front.
            failures: VecDeque::new(),
        }
    }

    fn is_full(&self) -> bool {
        // Flink's `isFailureTimestampsQueueFull`: more than max, i.e. max + 1 entries.
        self.failures.len() as u64 > u64::from(self.max_failures)
    }
}

impl RestartBackoff for FailureRateBackoff {
    fn notify_failure(&mut self, now: Instant) {
        if self.is_full() {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
    }

    fn can_restart(&self) -> bool {
        if !self.is_full() {
            return true;
        }
        match (self.failures.front(), self.failures.back()) {
            (Some(oldest), Some(now)) => now.saturating_duration_since(*oldest) > self.interval,
            _ => true,
        }
    }

    fn backoff_time(&self) -> Duration {
        self.delay
    }
}

impl fmt::Display for FailureRateBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Byte-for-byte Flink's generateStrategyString(), including the doubled class name,
        // the missing spaces and the unbalanced parenthesis, so log greps written against
        // Flink keep matching.
        write!(
            f,
            "FailureRateRestartBackoffTimeStrategy(FailureRateRestartBackoffTimeStrategy(\
             failuresIntervalMS={},backoffTimeMS={},maxFailuresPerInterval={})",
            millis(self.interval),
            millis(self.delay),
            self.max_failures
        )
    }
}

/// Flink's `DEFAULT_NEXT_RESTART_TIMESTAMP` (`Integer.MIN_VALUE`), shown before any failure.
const DEFAULT_NEXT_RESTART_TIMESTAMP: i64 = i32::MIN as i64;

/// Flink 1.19+'s `ExponentialDelayRestartBackoffTimeStrategy`.
///
/// * Failure `k` since the last reset (counting from 0) is restarted after
///   `initial × multiplierᵏ ± jitter`, clamped to `[initial, max]` (all in whole
///   milliseconds, as Flink computes it).
/// * Failures that arrive before the already scheduled restart are merged into that
///   attempt: they neither count nor push the restart further out.
/// * When a failure arrives `reset_threshold` or more after the previous scheduled restart,
///   the attempt counter resets, so the backoff starts from `initial` again.
/// * With `attempts_before_reset = Some(n)`, attempt `n + 1` since the last reset is refused.
///
/// ```
/// use floe::jobmanager::restart::{ExponentialDelayBackoff, RestartBackoff};
/// use std::time::{Duration, Instant};
/// let s = Duration::from_secs;
/// let mut b = ExponentialDelayBackoff::new(s(1), s(60), 2.0, s(3600), 0.0, None);
/// let t0 = Instant::now();
/// b.notify_failure(t0);
/// assert_eq!(b.backoff_time(), s(1));
/// b.notify_failure(t0 + s(2)); // after the first restart
/// assert_eq!(b.backoff_time(), s(2));
/// ```
#[derive(Clone, Debug)]
pub struct ExponentialDelayBackoff {
    initial_ms: u64,
    max_ms: u64,
    multiplier: f64,
    reset_threshold: Duration,
    jitter: f64,
    attempts_before_reset: Option<u32>,
    current_restart_attempt: u64,
    next_restart: Option<Instant>,
    last_notify: Option<Instant>,
    rng: StdRng,
    // Maps `Instant`s to epoch milliseconds for Display, so logs show the same kind of
    // timestamp Flink prints.
    anchor: (Instant, i64),
}

impl ExponentialDelayBackoff {
    /// A counter with the given parameters; jitter is seeded by the operating system.
    ///
    /// Out-of-range values never panic: `jitter` is clamped to `[0, 1]` and a non-finite
    /// multiplier acts as "jump straight to the maximum". [`RestartStrategy::from_config`]
    /// rejects such values before they get here.
    pub fn new(
        initial_backoff: Duration,
        max_backoff: Duration,
        multiplier: f64,
        reset_threshold: Duration,
        jitter: f64,
        attempts_before_reset: Option<u32>,
    ) -> Self {
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let epoch_ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        Self {
            initial_ms: millis(initial_backoff),
            max_ms: millis(max_backoff),
            multiplier,
            reset_threshold,
            jitter,
            attempts_before_reset,
            current_restart_attempt: 0,
            next_restart: None,
            last_notify: None,
            rng: os_seeded_rng(),
            anchor: (Instant::now(), epoch_ms),
        }
    }

    /// Replaces the jitter generator with one seeded from `seed`, for reproducible runs.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = StdRng::seed_from_u64(seed);
        self
    }

    /// Flink's `calculateActualBackoffTime`.
    fn next_backoff_ms(&mut self) -> u64 {
        // `as` saturates (and maps NaN to 0), matching Java's `(long)` cast.
        let current = (self.initial_ms as f64
            * self.multiplier.powf(self.current_restart_attempt as f64))
            as u64;
        let jitter = if self.jitter == 0.0 {
            0i128
        } else {
            let offset = ((current as f64) * self.jitter) as u64;
            let offset = offset.min(i64::MAX as u64) as i64;
            i128::from(self.rng.random_range(-offset..=offset))
        };
        let with_jitter = i128::from(current) + jitter;
        let capped = with_jitter.min(i128::from(self.max_ms));
        // Flink's lower bound is the initial backoff, not zero.
        capped
            .max(i128::from(self.initial_ms))
            .clamp(0, i128::from(u64::MAX)) as u64
    }

    fn epoch_ms(&self, t: Instant) -> i64 {
        let (anchor_instant, anchor_ms) = self.anchor;
        if t >= anchor_instant {
            let d = i64::try_from(t.duration_since(anchor_instant).as_millis()).unwrap_or(i64::MAX);
            anchor_ms.saturating_add(d)
        } else {
            let d = i64::try_from(anchor_instant.duration_since(t).as_millis()).unwrap_or(i64::MAX);
            anchor_ms.saturating_sub(d)
        }
    }
}

fn os_seeded_rng() -> StdRng {
    StdRng::try_from_os_rng().unwrap_or_else(|_| {
        // No OS entropy: any varying seed will do for jitter, which only spreads restarts.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        StdRng::seed_from_u64(nanos ^ u64::from(std::process::id()))
    })
}

impl RestartBackoff for ExponentialDelayBackoff {
    fn notify_failure(&mut self, now: Instant) {
        self.last_notify = Some(now);
        if let Some(next) = self.next_restart {
            // Failures before the scheduled restart belong to the same attempt.
            if now <= next {
                return;
            }
            if now.saturating_duration_since(next) >= self.reset_threshold {
                self.current_restart_attempt = 0;
            }
        }
        let backoff = Duration::from_millis(self.next_backoff_ms());
        self.next_restart = Some(
            now.checked_add(backoff)
                // Only reachable with absurd maxima on platforms with narrow `Instant`s.
                .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
                .unwrap_or(now),
        );
        self.current_restart_attempt = self.current_restart_attempt.saturating_add(1);
    }

    fn can_restart(&self) -> bool {
        match self.attempts_before_reset {
            Some(n) => self.current_restart_attempt <= u64::from(n),
            None => true,
        }
    }

    fn backoff_time(&self) -> Duration {
        // Flink throws before the first failure; zero is the harmless answer.
        match (self.next_restart, self.last_notify) {
            (Some(next), Some(now)) => next.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }
}

impl fmt::Display for ExponentialDelayBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = match self.attempts_before_reset {
            Some(n) => i64::from(n),
            // Flink's default for "unlimited" is Integer.MAX_VALUE.
            None => i64::from(i32::MAX),
        };
        let next = match self.next_restart {
            Some(t) => self.epoch_ms(t),
            None => DEFAULT_NEXT_RESTART_TIMESTAMP,
        };
        write!(
            f,
            "ExponentialDelayRestartBackoffTimeStrategy(initialBackoffMS={}, maxBackoffMS={}, \
             backoffMultiplier={}, resetBackoffThresholdMS={}, jitterFactor={}, \
             attemptsBeforeResetBackoff={}, currentRestartAttempt={}, nextRestartTimestamp={})",
            self.initial_ms,
            self.max_ms,
            java_double(self.multiplier),
            millis(self.reset_threshold),
            java_double(self.jitter),
            attempts,
            self.current_restart_attempt,
            next
        )
    }
}

/// Formats like Java's `Double.toString` for the values that appear in strategy strings
/// (`2.0`, not Rust's `2`), so output matches Flink's logs.
fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = v.abs();
    if v == 0.0 || (1e-3..1e7).contains(&abs) {
        let s = v.to_string();
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Java switches to computerized scientific notation outside [1e-3, 1e7): 1.0E7.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    // ---- no restart ----------------------------------------------------------------------

    #[test]
    fn no_restart_never_restarts() {
        let mut b = RestartStrategy::none().backoff();
        assert!(!b.can_restart(), "even before any failure");
        b.notify_failure(Instant::now());
        assert!(!b.can_restart());
        assert_eq!(b.backoff_time(), Duration::ZERO);
        assert_eq!(b.to_string(), "NoRestartBackoffTimeStrategy");
        assert_eq!(
            RestartStrategy::None.to_string(),
            "NoRestartBackoffTimeStrategy"
        );
    }

    // ---- fixed delay ---------------------------------------------------------------------

    #[test]
    fn fixed_delay_three_attempts_fourth_failure_is_terminal() {
        let mut b = RestartStrategy::fixed_delay(3, s(2)).backoff();
        let t0 = Instant::now();
        assert!(b.can_restart());
        for i in 1..=3u64 {
            b.notify_failure(t0 + s(i * 1000));
            assert!(b.can_restart(), "failure {i} restarts");
            assert_eq!(b.backoff_time(), s(2));
        }
        b.notify_failure(t0 + s(5000));
        assert!(!b.can_restart(), "failure 4 is terminal");
        // Never resets, however long the job ran in between.
        b.notify_failure(t0 + s(10_000_000));
        assert!(!b.can_restart());
    }

    #[test]
    fn fixed_delay_zero_attempts_fails_on_first_failure() {
        let mut b = FixedDelayBackoff::new(0, s(1));
        assert!(b.can_restart());
        b.notify_failure(Instant::now());
        assert!(!b.can_restart());
    }

    #[test]
    fn fixed_delay_max_attempts_does_not_wrap() {
        let mut b = FixedDelayBackoff::new(u32::MAX, ms(0));
        b.current_attempt = u64::from(u32::MAX) - 1;
        b.notify_failure(Instant::now());
        assert!(b.can_restart());
        b.notify_failure(Instant::now());
        assert!(!b.can_restart());
    }

    #[test]
    fn fixed_delay_display_is_flinks() {
        let b = RestartStrategy::fixed_delay(3, s(2)).backoff();
        assert_eq!(
            b.to_string(),
            "FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=2000)"
        );
        assert_eq!(
            RestartStrategy::fixed_delay(2147483647, ms(1000)).to_string(),
            "FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=2147483647, backoffTimeMS=1000)"
        );
    }

    // ---- failure rate --------------------------------------------------------------------

    #[test]
    fn failure_rate_one_per_minute() {
        let mut b = RestartStrategy::failure_rate(1, s(60), s(1)).backoff();
        let t0 = Instant::now();
        b.notify_failure(t0);
        assert!(b.can_restart());
        assert_eq!(b.backoff_time(), s(1));
        // Second failure 61 s later: the first is outside the window.
        b.notify_failure(t0 + s(61));
        assert!(b.can_restart());
        // Third failure 9 s after the second: two within a minute.
        b.notify_failure(t0 + s(70));
        assert!(!b.can_restart());
    }

    #[test]
    fn failure_rate_exactly_at_interval_boundary_is_refused() {
        // Flink: restart only if `now - oldest > interval` (strictly).
        let mut b = FailureRateBackoff::new(1, s(60), s(1));
        let t0 = Instant::now();
        b.notify_failure(t0);
        b.notify_failure(t0 + s(60));
        assert!(!b.can_restart());
        let mut b = FailureRateBackoff::new(1, s(60), s(1));
        b.notify_failure(t0);
        b.notify_failure(t0 + s(60) + ms(1));
        assert!(b.can_restart());
    }

    #[test]
    fn failure_rate_three_per_interval() {
        let mut b = FailureRateBackoff::new(3, s(10), ms(100));
        let t0 = Instant::now();
        for i in 0..3 {
            b.notify_failure(t0 + s(i));
            assert!(b.can_restart(), "failure {} of 3 within the window", i + 1);
        }
        // Fourth failure within 10 s of the first: too many.
        b.notify_failure(t0 + s(5));
        assert!(!b.can_restart());
        // A later failure slides the window: oldest kept is t0+1 s, newest t0+12 s.
        b.notify_failure(t0 + s(12));
        assert!(b.can_restart());
        assert_eq!(b.failures.len(), 4, "keeps max + 1 timestamps");
    }

    #[test]
    fn failure_rate_spread_out_failures_restart_forever() {
        let mut b = FailureRateBackoff::new(2, s(60), s(1));
        let t0 = Instant::now();
        for i in 0..100u64 {
            b.notify_failure(t0 + s(31 * i));
            assert!(b.can_restart(), "failure {i}");
        }
    }

    #[test]
    fn failure_rate_huge_max_does_not_allocate_up_front() {
        let mut b = FailureRateBackoff::new(u32::MAX, s(1), s(1));
        b.notify_failure(Instant::now());
        assert!(b.can_restart());
    }

    #[test]
    fn failure_rate_display_is_flinks() {
        let b = RestartStrategy::failure_rate(1, s(60), s(1)).backoff();
        assert_eq!(
            b.to_string(),
            "FailureRateRestartBackoffTimeStrategy(FailureRateRestartBackoffTimeStrategy(\
             failuresIntervalMS=60000,backoffTimeMS=1000,maxFailuresPerInterval=1)"
        );
    }

    // ---- exponential delay ---------------------------------------------------------------

    fn exp_no_jitter(multiplier: f64, max: Duration) -> ExponentialDelayBackoff {
        ExponentialDelayBackoff::new(s(1), max, multiplier, s(3600), 0.0, None).with_seed(7)
    }

    /// Notifies a failure just after the previous restart happened and returns the backoff.
    fn fail_after_restart(b: &mut ExponentialDelayBackoff, t: &mut Instant) -> Duration {
        b.notify_failure(*t);
        let backoff = b.backoff_time();
        *t += backoff + ms(1);
        backoff
    }

    #[test]
    fn exponential_growth_and_cap() {
        let mut b = exp_no_jitter(2.0, s(60));
        let mut t = Instant::now();
        let seen: Vec<u64> = (0..9)
            .map(|_| fail_after_restart(&mut b, &mut t).as_secs())
            .collect();
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(b.can_restart(), "unlimited attempts by default");
    }

    #[test]
    fn exponential_flink_default_multiplier_truncates_to_millis() {
        let mut b = exp_no_jitter(1.5, s(60));
        let mut t = Instant::now();
        let seen: Vec<u64> = (0..12)
            .map(|_| millis(fail_after_restart(&mut b, &mut t)))
            .collect();
        // (long) (1000 * 1.5^k), capped at 60000.
        assert_eq!(
            seen,
            vec![1000, 1500, 2250, 3375, 5062, 7593, 11390, 17085, 25628, 38443, 57665, 60000]
        );
    }

    #[test]
    fn exponential_resets_after_threshold_since_scheduled_restart() {
        let mut b = ExponentialDelayBackoff::new(s(1), s(60), 2.0, s(100), 0.0, None);
        let mut t = Instant::now();
        for _ in 0..4 {
            fail_after_restart(&mut b, &mut t);
        }
        assert_eq!(b.current_restart_attempt, 4);
        // Previous restart was scheduled at t - 1 ms; 99 s later is still inside the threshold.
        let next = b.next_restart.unwrap();
        b.notify_failure(next + s(99));
        assert_eq!(b.backoff_time(), s(16));
        // Exactly the threshold after the previous scheduled restart resets (Flink uses >=).
        let next = b.next_restart.unwrap();
        b.notify_failure(next + s(100));
        assert_eq!(b.backoff_time(), s(1));
        assert_eq!(b.current_restart_attempt, 1);
        let next = b.next_restart.unwrap();
        b.notify_failure(next + ms(1));
        assert_eq!(b.backoff_time(), s(2));
    }

    #[test]
    fn exponential_merges_failures_before_scheduled_restart() {
        let mut b = exp_no_jitter(2.0, s(60));
        let t0 = Instant::now();
        b.notify_failure(t0);
        assert_eq!(b.backoff_time(), s(1));
        // Another task fails 300 ms later, before the restart at t0 + 1 s: same attempt.
        b.notify_failure(t0 + ms(300));
        assert_eq!(b.current_restart_attempt, 1);
        assert_eq!(
            b.backoff_time(),
            ms(700),
            "restart stays at the scheduled instant"
        );
        // Exactly at the scheduled instant still merges (Flink: now <= next).
        b.notify_failure(t0 + s(1));
        assert_eq!(b.current_restart_attempt, 1);
        assert_eq!(b.backoff_time(), Duration::ZERO);
        // After it: a new attempt with a doubled backoff.
        b.notify_failure(t0 + s(1) + ms(1));
        assert_eq!(b.current_restart_attempt, 2);
        assert_eq!(b.backoff_time(), s(2));
    }

    #[test]
    fn exponential_attempts_before_reset() {
        let mut b = ExponentialDelayBackoff::new(s(1), s(60), 2.0, s(3600), 0.0, Some(3));
        let mut t = Instant::now();
        for i in 1..=3 {
            fail_after_restart(&mut b, &mut t);
            assert!(b.can_restart(), "attempt {i}");
        }
        fail_after_restart(&mut b, &mut t);
        assert!(!b.can_restart(), "attempt 4 with attempts_before_reset = 3");
        // A failure after the reset threshold starts over.
        let next = b.next_restart.unwrap();
        b.notify_failure(next + s(3600));
        assert!(b.can_restart());
        assert_eq!(b.backoff_time(), s(1));
    }

    #[test]
    fn exponential_jitter_bounds() {
        let jitter = 0.25;
        for seed in 0..50 {
            let mut b = ExponentialDelayBackoff::new(s(1), s(60), 2.0, s(3600), jitter, None)
                .with_seed(seed);
            let mut t = Instant::now();
            for k in 0..10u32 {
                let base = (1000.0 * 2f64.powi(k as i32)) as u64;
                let lo = ((base as f64) * (1.0 - jitter)) as u64;
                let hi = ((base as f64) * (1.0 + jitter)) as u64;
                let got = millis(fail_after_restart(&mut b, &mut t));
                assert!(got >= 1000, "never below initial: {got}");
                assert!(got <= 60_000, "never above max: {got}");
                assert!(
                    got >= lo.clamp(1000, 60_000) && got <= hi.min(60_000),
                    "k={k} got {got}"
                );
            }
        }
    }

    #[test]
    fn exponential_jitter_actually_varies_and_is_reproducible() {
        let sample = |seed| {
            let mut b = ExponentialDelayBackoff::new(s(10), s(600), 2.0, s(3600), 0.5, None)
                .with_seed(seed);
            let mut t = Instant::now();
            (0..5)
                .map(|_| fail_after_restart(&mut b, &mut t))
                .collect::<Vec<_>>()
        };
        assert_eq!(sample(42), sample(42), "same seed, same backoffs");
        let distinct: std::collections::BTreeSet<_> = (0..20).map(|seed| sample(seed)[1]).collect();
        assert!(distinct.len() > 1, "jitter spreads restarts");
        // The OS-seeded generator also stays within bounds.
        let mut b = ExponentialDelayBackoff::new(s(10), s(600), 2.0, s(3600), 0.5, None);
        b.notify_failure(Instant::now());
        assert!(b.backoff_time() >= s(10) && b.backoff_time() <= s(15));
    }

    #[test]
    fn exponential_backoff_before_any_failure_is_zero() {
        let b = RestartStrategy::exponential_delay().backoff();
        assert!(b.can_restart());
        assert_eq!(b.backoff_time(), Duration::ZERO);
    }

    #[test]
    fn exponential_degenerate_parameters_do_not_panic() {
        let t0 = Instant::now();
        for (initial, max, mult, jitter) in [
            (ms(0), ms(0), 1.5, 0.1),
            (s(10), s(1), 2.0, 0.1), // initial above max
            (s(1), s(60), f64::NAN, 0.1),
            (s(1), s(60), f64::INFINITY, 0.5),
            (s(1), s(60), 0.5, 7.0),
            (s(1), s(60), -3.0, -1.0),
            (Duration::MAX, Duration::MAX, 1e300, 1.0),
        ] {
            let mut b = ExponentialDelayBackoff::new(initial, max, mult, s(1), jitter, Some(0))
                .with_seed(1);
            let mut t = t0;
            for _ in 0..200 {
                b.notify_failure(t);
                let _ = b.backoff_time();
                let _ = b.can_restart();
                let _ = b.to_string();
                t += s(3);
            }
        }
    }

    #[test]
    fn exponential_display_is_flinks() {
        let b = RestartStrategy::exponential_delay().backoff();
        assert_eq!(
            b.to_string(),
            "ExponentialDelayRestartBackoffTimeStrategy(initialBackoffMS=1000, maxBackoffMS=60000, \
             backoffMultiplier=1.5, resetBackoffThresholdMS=3600000, jitterFactor=0.1, \
             attemptsBeforeResetBackoff=2147483647, currentRestartAttempt=0, \
             nextRestartTimestamp=-2147483648)"
        );
        let mut b = ExponentialDelayBackoff::new(s(2), s(300), 2.0, s(60), 0.0, Some(5));
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        b.notify_failure(Instant::now());
        let text = b.to_string();
        let prefix = "ExponentialDelayRestartBackoffTimeStrategy(initialBackoffMS=2000, \
                      maxBackoffMS=300000, backoffMultiplier=2.0, resetBackoffThresholdMS=60000, \
                      jitterFactor=0.0, attemptsBeforeResetBackoff=5, currentRestartAttempt=1, \
                      nextRestartTimestamp=";
        assert!(text.starts_with(prefix), "{text}");
        let ts: i64 = text[prefix.len()..text.len() - 1].parse().unwrap();
        // Epoch milliseconds of now + 2 s, give or take scheduling noise.
        assert!(
            ts >= before + 2000 - 50 && ts <= before + 2000 + 5_000,
            "{ts} vs {before}"
        );
    }

    #[test]
    fn java_double_formatting() {
        assert_eq!(java_double(1.5), "1.5");
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(0.1), "0.1");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
        assert_eq!(java_double(f64::NAN), "NaN");
        assert_eq!(java_double(f64::INFINITY), "Infinity");
    }

    // ---- configuration ---------------------------------------------------------------------

    #[test]
    fn default_depends_on_checkpointing() {
        let conf = Configuration::new();
        assert_eq!(
            RestartStrategy::from_config(&conf, false).unwrap(),
            RestartStrategy::None
        );
        assert_eq!(
            RestartStrategy::from_config(&conf, true).unwrap(),
            RestartStrategy::exponential_delay()
        );
    }

    #[test]
    fn implicit_default_ignores_exponential_keys_like_flink() {
        let mut conf = Configuration::new();
        conf.set("restart-strategy.exponential-delay.max-backoff", "5 min")
            .unwrap();
        assert_eq!(
            RestartStrategy::from_config(&conf, true).unwrap(),
            RestartStrategy::exponential_delay()
        );
        conf.set("restart-strategy.type", "exponential-delay")
            .unwrap();
        let RestartStrategy::ExponentialDelay { max_backoff, .. } =
            RestartStrategy::from_config(&conf, true).unwrap()
        else {
            panic!("expected exponential delay");
        };
        assert_eq!(max_backoff, s(300));
    }

    #[test]
    fn explicit_type_wins_over_checkpointing_default() {
        let mut conf = Configuration::new();
        conf.set("restart-strategy.type", "none").unwrap();
        assert_eq!(
            RestartStrategy::from_config(&conf, true).unwrap(),
            RestartStrategy::None
        );
        conf.set("restart-strategy.type", "fixed-delay").unwrap();
        assert_eq!(
            RestartStrategy::from_config(&conf, false).unwrap(),
            RestartStrategy::fixed_delay(1, s(1)),
            "fixed-delay with Flink's option defaults"
        );
    }

    #[test]
    fn from_config_with_old_key_and_spelling() {
        let mut conf = Configuration::new();
        conf.set("restart-strategy", "fixeddelay").unwrap();
        conf.set("restart-strategy.fixed-delay.attempts", "3")
            .unwrap();
        conf.set("restart-strategy.fixed-delay.delay", "2 s")
            .unwrap();
        let strategy = RestartStrategy::from_config(&conf, false).unwrap();
        assert_eq!(strategy, RestartStrategy::fixed_delay(3, s(2)));
        assert_eq!(
            strategy.to_string(),
            "FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=2000)"
        );
        for (spelling, expected) in [
            ("disable", RestartStrategy::None),
            ("off", RestartStrategy::None),
            ("failurerate", RestartStrategy::failure_rate(1, s(60), s(1))),
            ("exponentialdelay", RestartStrategy::exponential_delay()),
            ("Exponential-Delay", RestartStrategy::exponential_delay()),
        ] {
            let mut conf = Configuration::new();
            conf.set("restart-strategy", spelling).unwrap();
            assert_eq!(
                RestartStrategy::from_config(&conf, false).unwrap(),
                expected,
                "{spelling}"
            );
        }
    }

    #[test]
    fn from_config_reads_every_key() {
        let mut conf = Configuration::new();
        conf.set_dynamic("restart-strategy.type=failure-rate")
            .unwrap();
        conf.set_dynamic("restart-strategy.failure-rate.max-failures-per-interval=3")
            .unwrap();
        conf.set_dynamic("restart-strategy.failure-rate.failure-rate-interval=5 min")
            .unwrap();
        conf.set_dynamic("restart-strategy.failure-rate.delay=10 s")
            .unwrap();
        assert_eq!(
            RestartStrategy::from_config(&conf, false).unwrap(),
            RestartStrategy::failure_rate(3, s(300), s(10))
        );

        let mut conf = Configuration::new();
        conf.set("restart-strategy.type", "exponential-delay")
            .unwrap();
        conf.set(
            "restart-strategy.exponential-delay.initial-backoff",
            "100 ms",
        )
        .unwrap();
        conf.set("restart-strategy.exponential-delay.max-backoff", "10 s")
            .unwrap();
        conf.set("restart-strategy.exponential-delay.backoff-multiplier", "3")
            .unwrap();
        conf.set(
            "restart-strategy.exponential-delay.reset-backoff-threshold",
            "5 min",
        )
        .unwrap();
        conf.set("restart-strategy.exponential-delay.jitter-factor", "0")
            .unwrap();
        conf.set(
            "restart-strategy.exponential-delay.attempts-before-reset-backoff",
            "7",
        )
        .unwrap();
        assert_eq!(
            RestartStrategy::from_config(&conf, false).unwrap(),
            RestartStrategy::ExponentialDelay {
                initial_backoff: ms(100),
                max_backoff: s(10),
                multiplier: 3.0,
                reset_threshold: s(300),
                jitter: 0.0,
                attempts_before_reset: Some(7),
            }
        );
    }

    #[test]
    fn from_config_rejects_what_flink_rejects() {
        let check = |pairs: &[(&str, &str)], key: &str, reason_part: &str| {
            let mut conf = Configuration::new();
            for (k, v) in pairs {
                conf.set(k, v).unwrap();
            }
            let err = RestartStrategy::from_config(&conf, true).unwrap_err();
            match &err {
                ConfigError::InvalidValue { key: k, reason, .. } => {
                    assert_eq!(k, key, "{err}");
                    assert!(reason.contains(reason_part), "{err}");
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        check(
            &[
                ("restart-strategy.type", "failure-rate"),
                (KEY_FR_MAX_FAILURES, "0"),
            ],
            KEY_FR_MAX_FAILURES,
            "greater than 0",
        );
        check(
            &[
                ("restart-strategy.type", "failure-rate"),
                (KEY_FR_INTERVAL, "0 s"),
            ],
            KEY_FR_INTERVAL,
            "greater than 0 ms",
        );
        check(
            &[
                ("restart-strategy.type", "exponential-delay"),
                (KEY_EXP_INITIAL, "2 min"),
            ],
            KEY_EXP_INITIAL,
            "cannot be higher than maximum backoff",
        );
        check(
            &[
                ("restart-strategy.type", "exponential-delay"),
                (KEY_EXP_INITIAL, "0 ms"),
            ],
            KEY_EXP_INITIAL,
            "at least 1 ms",
        );
        check(
            &[
                ("restart-strategy.type", "exponential-delay"),
                (KEY_EXP_RESET, "500 us"),
            ],
            KEY_EXP_RESET,
            "at least 1 ms",
        );
        check(
            &[
                ("restart-strategy.type", "exponential-delay"),
                (KEY_EXP_ATTEMPTS, "0"),
            ],
            KEY_EXP_ATTEMPTS,
            "at least 1",
        );
        let mut conf = Configuration::new();
        conf.set("restart-strategy.type", "exponential-delay")
            .unwrap();
        conf.set(KEY_EXP_INITIAL, "2 min").unwrap();
        assert_eq!(
            RestartStrategy::from_config(&conf, true)
                .unwrap_err()
                .to_string(),
            "invalid value '2 min' for configuration key \
             'restart-strategy.exponential-delay.initial-backoff': initial backoff cannot be \
             higher than maximum backoff (restart-strategy.exponential-delay.max-backoff = 1 min)"
        );
    }

    #[test]
    fn to_config_round_trips() {
        let strategies = [
            RestartStrategy::none(),
            RestartStrategy::fixed_delay(3, s(2)),
            RestartStrategy::fixed_delay(0, ms(0)),
            RestartStrategy::fixed_delay(u32::MAX, ms(1500)),
            RestartStrategy::failure_rate(1, s(60), s(1)),
            RestartStrategy::failure_rate(5, Duration::from_micros(2_500_000), ms(250)),
            RestartStrategy::exponential_delay(),
            RestartStrategy::ExponentialDelay {
                initial_backoff: ms(10),
                max_backoff: s(7200),
                multiplier: 1.1,
                reset_threshold: s(86_400),
                jitter: 1.0,
                attempts_before_reset: Some(10),
            },
        ];
        for strategy in strategies {
            for checkpointing in [false, true] {
                let mut conf = Configuration::new();
                strategy.to_config(&mut conf);
                assert_eq!(
                    RestartStrategy::from_config(&conf, checkpointing).unwrap(),
                    strategy,
                    "via {:?}",
                    conf.iter().collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn to_config_overwrites_and_clears_attempts() {
        let mut conf = Configuration::new();
        RestartStrategy::ExponentialDelay {
            initial_backoff: s(1),
            max_backoff: s(2),
            multiplier: 2.0,
            reset_threshold: s(3),
            jitter: 0.0,
            attempts_before_reset: Some(4),
        }
        .to_config(&mut conf);
        assert_eq!(conf.get_raw(KEY_EXP_ATTEMPTS), Some("4"));
        RestartStrategy::exponential_delay().to_config(&mut conf);
        assert_eq!(conf.get_raw(KEY_EXP_ATTEMPTS), None);
        assert_eq!(conf.get_raw(KEY_EXP_MAX), Some("1 min"));
        assert_eq!(conf.get_raw(KEY_EXP_MULTIPLIER), Some("1.5"));
        assert_eq!(
            RestartStrategy::from_config(&conf, false).unwrap(),
            RestartStrategy::exponential_delay()
        );
    }

    #[test]
    fn to_config_of_invalid_strategy_is_reported_on_read() {
        let mut conf = Configuration::new();
        RestartStrategy::ExponentialDelay {
            initial_backoff: s(1),
            max_backoff: s(60),
            multiplier: 0.5,
            reset_threshold: s(3600),
            jitter: 0.1,
            attempts_before_reset: None,
        }
        .to_config(&mut conf);
        let err = RestartStrategy::from_config(&conf, true).unwrap_err();
        assert!(err.to_string().contains("backoff-multiplier"), "{err}");
    }

    #[test]
    fn backoff_is_send() {
        fn assert_send<T: Send>(_: T) {}
        assert_send(RestartStrategy::exponential_delay().backoff());
    }
}
