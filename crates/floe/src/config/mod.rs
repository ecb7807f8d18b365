//! Flink-compatible configuration.
//!
//! Floe reads the same option keys as Apache Flink (1.20/2.x names), so a user's
//! `config.yaml` / `-D key=value` settings carry over unchanged. The deprecated 1.x
//! names (`state.checkpoints.dir`, `state.savepoints.dir`, `restart-strategy`, ...)
//! are accepted as aliases and stored under the canonical key, so the rest of the
//! system only ever asks for one name.
//!
//! Values are validated when they are set, not when they are read: a typo in a
//! config file should fail `floe run` up front rather than minutes later when a
//! checkpoint is first triggered.
//!
//! Keys are typed constants in [`keys`], read with [`Configuration::get`]; [`OPTIONS`]
//! (in `options.rs`) describes each one. Flink keys that mean nothing to a native engine
//! (JVM, memory, RPC, slots) are accepted and listed by [`Configuration::ignored_keys`], so
//! Flink's own `config.yaml` loads; see [`options`] for which keys are honoured, refused or
//! ignored.
//!
//! ```
//! use floe::config::Configuration;
//! use std::time::Duration;
//!
//! let mut conf = Configuration::new();
//! conf.set("state.checkpoints.dir", "file:///tmp/ck").unwrap();      // 1.x alias
//! conf.set_dynamic("execution.checkpointing.interval=5 s").unwrap();  // as given to -D
//! assert_eq!(conf.get_raw("execution.checkpointing.dir"), Some("file:///tmp/ck"));
//! assert_eq!(
//!     conf.get_duration("execution.checkpointing.interval").unwrap(),
//!     Some(Duration::from_secs(5))
//! );
//! // Unset options fall back to Flink's defaults.
//! assert_eq!(conf.get_u32("execution.checkpointing.num-retained").unwrap(), Some(1));
//! ```

pub mod file;
pub mod keys;
pub mod options;

pub use keys::{Key, OptionValue};
pub use options::OPTIONS;
use options::{ENUM_VALUE_ALIASES, UNHONOURED_VALUES};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The type an option's value must parse as.
///
/// ```
/// use floe::config::{ValueKind, OPTIONS};
/// let mode = OPTIONS.iter().find(|o| o.key == "execution.checkpointing.mode").unwrap();
/// assert!(matches!(mode.kind, ValueKind::Enum(_)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A duration in Flink's notation (see [`parse_duration`]).
    Duration,
    /// An unsigned 32-bit integer.
    U32,
    /// An unsigned 64-bit integer.
    U64,
    /// A finite floating-point number.
    F64,
    /// `true` or `false`, in any case.
    Bool,
    /// Any string.
    String,
    /// One of the listed values, matched case-insensitively; the listed spelling is canonical.
    Enum(&'static [&'static str]),
}

/// Static description of one configuration option.
#[derive(Clone, Copy, Debug)]
pub struct ConfigOption {
    /// The canonical (Flink 1.20/2.x) key.
    pub key: &'static str,
    /// Deprecated keys that resolve to this option.
    pub aliases: &'static [&'static str],
    /// The type the value must parse as.
    pub kind: ValueKind,
    /// The default, written as it would appear in a config file; `None` when unset means "off"
    /// or "decided elsewhere".
    pub default: Option<&'static str>,
    /// One-line human-readable description.
    pub description: &'static str,
}

/// Flink's lower bound for the checkpoint interval and timeout
/// (`CheckpointCoordinatorConfiguration.MINIMAL_CHECKPOINT_TIME`).
const MINIMAL_CHECKPOINT_TIME: Duration = Duration::from_millis(10);

const DURATION_HINT: &str = "expected a duration such as '5 s', '500 ms' or '1 min'";

/// A configuration problem: an unknown key, a value that does not fit its option, or a
/// `-D` entry that is not `key=value`. Every variant renders as one line.
///
/// ```
/// use floe::config::{Configuration, ConfigError};
/// let err = Configuration::new().set("rest.port", "http").unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidValue { .. }));
/// assert!(err.to_string().starts_with("invalid value 'http' for configuration key 'rest.port'"));
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ConfigError {
    /// The key is neither an option nor an alias of one.
    #[error(
        "unknown configuration key '{}'{}",
        one_line(key),
        suggestion_suffix(key)
    )]
    UnknownKey {
        /// The key as the user wrote it.
        key: String,
    },
    /// The value does not parse as, or is out of range for, the option's kind.
    #[error(
        "invalid value '{}' for configuration key '{key}': {reason}",
        one_line(value)
    )]
    InvalidValue {
        /// The canonical key.
        key: String,
        /// The value as the user wrote it.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A known Flink option set to a value Floe cannot honour (`state.backend.type: rocksdb`).
    #[error(
        "unsupported value '{}' for configuration key '{key}': {reason}",
        one_line(value)
    )]
    Unsupported {
        /// The canonical key.
        key: String,
        /// The value as the user wrote it.
        value: String,
        /// What Floe does instead, and which value to use.
        reason: String,
    },
    /// A dynamic property without `=` or with an empty key.
    #[error(
        "malformed dynamic property '{}' (expected key=value)",
        one_line(entry)
    )]
    Malformed {
        /// The entry as given to `-D`.
        entry: String,
    },
}

/// Keeps error messages on one line even when a value holds control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn suggestion_suffix(key: &str) -> String {
    match suggest_key(key) {
        Some(s) => format!("; did you mean '{s}'?"),
        None => String::new(),
    }
}

/// The closest known key (canonical or alias) within edit distance 3, if any.
fn suggest_key(key: &str) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for opt in OPTIONS {
        for name in std::iter::once(&opt.key).chain(opt.aliases.iter()) {
            let d = edit_distance(key, name);
            if d <= 3 && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, name));
            }
        }
    }
    best.map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Looks up an option by its canonical key or one of its aliases.
///
/// ```
/// use floe::config::find_option;
/// assert_eq!(find_option("state.savepoints.dir").unwrap().key, "execution.checkpointing.savepoint-dir");
/// assert!(find_option("no.such.key").is_none());
/// ```
pub fn find_option(key: &str) -> Option<&'static ConfigOption> {
    OPTIONS
        .iter()
        .find(|o| o.key == key)
        .or_else(|| OPTIONS.iter().find(|o| o.aliases.contains(&key)))
}

fn lookup(key: &str) -> Result<&'static ConfigOption, ConfigError> {
    find_option(key).ok_or_else(|| ConfigError::UnknownKey {
        key: key.to_string(),
    })
}

/// A parsed, validated value.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Duration(Duration),
    U32(u32),
    U64(u64),
    F64(f64),
    Bool(bool),
    String(String),
}

impl Value {
    fn kind_name(&self) -> &'static str {
        match self {
            Value::Duration(_) => "a duration",
            Value::U32(_) => "an unsigned 32-bit integer",
            Value::U64(_) => "an unsigned 64-bit integer",
            Value::F64(_) => "a floating-point number",
            Value::Bool(_) => "a boolean",
            Value::String(_) => "a string",
        }
    }
}

/// Parses `raw` as `opt`'s kind and applies the option's range checks.
fn parse_value(opt: &ConfigOption, raw: &str) -> Result<Value, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidValue {
        key: opt.key.to_string(),
        value: raw.to_string(),
        reason,
    };
    let v = raw.trim();
    if let Some((_, _, reason)) = UNHONOURED_VALUES
        .iter()
        .find(|(k, value, _)| *k == opt.key && value.eq_ignore_ascii_case(v))
    {
        return Err(ConfigError::Unsupported {
            key: opt.key.to_string(),
            value: raw.to_string(),
            reason: (*reason).to_string(),
        });
    }
    let value = match opt.kind {
        ValueKind::Duration => Value::Duration(parse_duration(v).map_err(invalid)?),
        ValueKind::U32 => Value::U32(
            v.parse::<u32>()
                .map_err(|_| invalid("expected an unsigned 32-bit integer".into()))?,
        ),
        ValueKind::U64 => Value::U64(
            v.parse::<u64>()
                .map_err(|_| invalid("expected an unsigned 64-bit integer".into()))?,
        ),
        ValueKind::F64 => {
            let f = v
                .parse::<f64>()
                .map_err(|_| invalid("expected a number such as '1.5'".into()))?;
            if !f.is_finite() {
                return Err(invalid("expected a finite number".into()));
            }
            Value::F64(f)
        }
        ValueKind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(invalid("expected true or false".into())),
        },
        ValueKind::String => Value::String(v.to_string()),
        ValueKind::Enum(allowed) => match normalize_enum(opt.key, allowed, v) {
            Some(canonical) => Value::String(canonical.to_string()),
            None => return Err(invalid(enum_expectation(opt.key, allowed))),
        },
    };
    check_range(opt.key, &value).map_err(invalid)?;
    Ok(value)
}

fn normalize_enum(key: &str, allowed: &'static [&'static str], v: &str) -> Option<&'static str> {
    allowed
        .iter()
        .copied()
        .find(|a| a.eq_ignore_ascii_case(v))
        .or_else(|| {
            ENUM_VALUE_ALIASES
                .iter()
                .find(|(k, alias, _)| *k == key && alias.eq_ignore_ascii_case(v))
                .map(|(_, _, canonical)| *canonical)
        })
}

fn enum_expectation(key: &str, allowed: &[&str]) -> String {
    let mut msg = format!("expected one of {}", allowed.join(", "));
    let extra: Vec<&str> = ENUM_VALUE_ALIASES
        .iter()
        .filter(|(k, _, _)| *k == key)
        .map(|(_, alias, _)| *alias)
        .collect();
    if !extra.is_empty() {
        msg.push_str(&format!(" (or {})", extra.join(", ")));
    }
    msg
}

/// Per-option bounds that the kind alone cannot express (mirroring Flink's checks).
fn check_range(key: &str, value: &Value) -> Result<(), String> {
    let u32_between = |n: u32, lo: u32, hi: u32| {
        if n < lo || n > hi {
            Err(if hi == u32::MAX {
                format!("must be at least {lo}")
            } else {
                format!("must be between {lo} and {hi}")
            })
        } else {
            Ok(())
        }
    };
    let is = |k: &[&str]| k.contains(&key);
    match value {
        Value::Duration(d)
            if is(&[keys::CHECKPOINTING_INTERVAL.name()]) && *d < MINIMAL_CHECKPOINT_TIME =>
        {
            Err("Checkpoint interval must be larger than or equal to 10 ms".into())
        }
        Value::Duration(d)
            if is(&[keys::CHECKPOINTING_TIMEOUT.name()]) && *d < MINIMAL_CHECKPOINT_TIME =>
        {
            Err("Checkpoint timeout must be larger than or equal to 10 ms".into())
        }
        Value::U32(n)
            if is(&[
                keys::MAX_CONCURRENT_CHECKPOINTS.name(),
                keys::NUM_RETAINED_CHECKPOINTS.name(),
                keys::PARALLELISM_DEFAULT.name(),
            ]) =>
        {
            u32_between(*n, 1, u32::MAX)
        }
        Value::U32(n) if is(&[keys::MAX_PARALLELISM.name()]) => u32_between(*n, 1, 32768),
        Value::Duration(d)
            if is(&[
                keys::HEARTBEAT_INTERVAL.name(),
                keys::HEARTBEAT_TIMEOUT.name(),
            ]) && d.is_zero() =>
        {
            Err("must be larger than 0".into())
        }
        // 0 asks the operating system for a free port (tests, several jobs on one host).
        Value::U32(n) if is(&[keys::REST_PORT.name()]) => u32_between(*n, 0, 65535),
        Value::F64(f) if is(&[keys::EXPONENTIAL_DELAY_MULTIPLIER.name()]) && *f < 1.0 => {
            Err("must be at least 1.0".into())
        }
        Value::F64(f)
            if is(&[keys::EXPONENTIAL_DELAY_JITTER.name()]) && !(0.0..=1.0).contains(f) =>
        {
            Err("must be between 0.0 and 1.0".into())
        }
        _ => Ok(()),
    }
}

/// A set of configuration values keyed by canonical option key.
///
/// Only explicitly set values are stored; the typed getters fall back to the option's
/// default, so [`Configuration::iter`] shows exactly what the user changed.
///
/// ```
/// use floe::config::Configuration;
/// let mut file = Configuration::new();
/// file.set("parallelism.default", "2").unwrap();
/// let mut cli = Configuration::new();
/// cli.set_dynamic("parallelism.default=4").unwrap();
/// file.merge(&cli); // -D overrides the config file
/// assert_eq!(file.get_u32("parallelism.default").unwrap(), Some(4));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Configuration {
    values: BTreeMap<&'static str, String>,
    /// Flink keys accepted without effect ([`options::IGNORED_FLINK_KEYS`]), as written.
    ignored: BTreeSet<String>,
}

impl Configuration {
    /// An empty configuration: every getter returns the option's default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves aliases (deprecated 1.x names) to the canonical key, validates the value
    /// against the option's kind, and stores it with surrounding whitespace trimmed.
    ///
    /// ```
    /// use floe::config::Configuration;
    /// let mut conf = Configuration::new();
    /// conf.set("restart-strategy", "fixeddelay").unwrap();
    /// assert_eq!(conf.get_string("restart-strategy.type").unwrap().as_deref(), Some("fixed-delay"));
    /// assert!(conf.set("execution.checkpointing.interval", "5 ms").is_err()); // below Flink's 10 ms
    /// ```
    ///
    /// A Flink key that means nothing to Floe (JVM, memory, RPC, task slots; see
    /// [`options::IGNORED_FLINK_KEYS`]) is accepted with any value and only remembered in
    /// [`ignored_keys`](Self::ignored_keys).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.trim();
        if find_option(key).is_none() && options::is_ignored_flink_key(key) {
            self.ignored.insert(key.to_string());
            return Ok(());
        }
        let opt = lookup(key)?;
        parse_value(opt, value)?;
        self.values.insert(opt.key, value.trim().to_string());
        Ok(())
    }

    /// Parses `key=value` as given to `-D`. The value may itself contain `=` (only the first
    /// one splits); spaces around the key and value are ignored.
    ///
    /// ```
    /// use floe::config::Configuration;
    /// let mut conf = Configuration::new();
    /// conf.set_dynamic(" pipeline.name = a=b ").unwrap();
    /// assert_eq!(conf.get_raw("pipeline.name"), Some("a=b"));
    /// assert!(conf.set_dynamic("pipeline.name").is_err());
    /// ```
    pub fn set_dynamic(&mut self, entry: &str) -> Result<(), ConfigError> {
        let malformed = || ConfigError::Malformed {
            entry: entry.to_string(),
        };
        let (key, value) = entry.split_once('=').ok_or_else(malformed)?;
        let key = key.trim();
        if key.is_empty() {
            return Err(malformed());
        }
        self.set(key, value)
    }

    /// Overlays `other` on top of `self`: keys set in `other` win, the rest are kept.
    pub fn merge(&mut self, other: &Configuration) {
        for (k, v) in &other.values {
            self.values.insert(k, v.clone());
        }
        self.ignored.extend(other.ignored.iter().cloned());
    }

    /// The Flink keys that were set but mean nothing to Floe (JVM, memory, RPC, task slots),
    /// sorted; whoever loads a configuration reports them in one warning.
    pub fn ignored_keys(&self) -> impl Iterator<Item = &str> {
        self.ignored.iter().map(String::as_str)
    }

    /// The value of `key`, else its option's default; `Ok(None)` when neither exists.
    ///
    /// ```
    /// use floe::config::{keys, Configuration};
    /// let conf = Configuration::new();
    /// assert_eq!(conf.get(keys::NUM_RETAINED_CHECKPOINTS).unwrap(), Some(1));
    /// assert_eq!(conf.get(keys::CHECKPOINTS_DIRECTORY).unwrap(), None);
    /// ```
    pub fn get<T: OptionValue>(&self, key: Key<T>) -> Result<Option<T>, ConfigError> {
        T::read(self, key.name())
    }

    /// The value of `key`, else its option's default, else `default`.
    pub fn get_or<T: OptionValue>(&self, key: Key<T>, default: T) -> Result<T, ConfigError> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// Sets `key` to a typed value, validated as [`set`](Self::set) validates text.
    ///
    /// ```
    /// use floe::config::{keys, Configuration};
    /// let mut conf = Configuration::new();
    /// conf.put(keys::PARALLELISM_DEFAULT, &4).unwrap();
    /// assert_eq!(conf.get_raw("parallelism.default"), Some("4"));
    /// assert!(conf.put(keys::PARALLELISM_DEFAULT, &0).is_err());
    /// ```
    pub fn put<T: OptionValue>(&mut self, key: Key<T>, value: &T) -> Result<(), ConfigError> {
        self.set(key.name(), &value.write())
    }

    /// Whether a value was explicitly set for `key`.
    pub fn is_set<T>(&self, key: Key<T>) -> bool {
        self.contains(key.name())
    }

    /// Removes an explicitly set value (so the default applies again) and returns it.
    /// `key` may be an alias; unknown keys return `None`.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let opt = find_option(key)?;
        self.values.remove(opt.key)
    }

    /// Whether a value was explicitly set for `key` (which may be an alias).
    pub fn contains(&self, key: &str) -> bool {
        self.get_raw(key).is_some()
    }

    /// The value as set, without defaults. `key` may be an alias; unknown keys return `None`.
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        let opt = find_option(key)?;
        self.values.get(opt.key).map(String::as_str)
    }

    /// The set value, else the option's default, parsed. `Ok(None)` when neither exists.
    fn get_value(&self, key: &str) -> Result<Option<(&'static ConfigOption, Value)>, ConfigError> {
        let opt = lookup(key)?;
        let raw = match self.values.get(opt.key) {
            Some(v) => v.as_str(),
            None => match opt.default {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        // Values are validated on `set`, but re-parsing keeps the getters honest for
        // values inserted without validation (see `insert_unchecked`).
        Ok(Some((opt, parse_value(opt, raw)?)))
    }

    fn wrong_kind(opt: &ConfigOption, value: &Value, wanted: &str) -> ConfigError {
        ConfigError::InvalidValue {
            key: opt.key.to_string(),
            value: format!("{value:?}"),
            reason: format!("option holds {}, not {wanted}", value.kind_name()),
        }
    }

    /// The duration set for `key`, else its default.
    ///
    /// ```
    /// use floe::config::Configuration;
    /// use std::time::Duration;
    /// let conf = Configuration::new();
    /// assert_eq!(conf.get_duration("execution.checkpointing.timeout").unwrap(), Some(Duration::from_secs(600)));
    /// assert_eq!(conf.get_duration("execution.checkpointing.interval").unwrap(), None);
    /// ```
    pub fn get_duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.get_value(key)? {
            None => Ok(None),
            Some((_, Value::Duration(d))) => Ok(Some(d)),
            Some((opt, v)) => Err(Self::wrong_kind(opt, &v, "a duration")),
        }
    }

    /// The `u32` set for `key`, else its default.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.get_value(key)? {
            None => Ok(None),
            Some((_, Value::U32(n))) => Ok(Some(n)),
            Some((opt, v)) => Err(Self::wrong_kind(opt, &v, "an unsigned 32-bit integer")),
        }
    }

    /// The `u64` set for `key`, else its default. `U32` options are widened.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get_value(key)? {
            None => Ok(None),
            Some((_, Value::U64(n))) => Ok(Some(n)),
            Some((_, Value::U32(n))) => Ok(Some(u64::from(n))),
            Some((opt, v)) => Err(Self::wrong_kind(opt, &v, "an unsigned 64-bit integer")),
        }
    }

    /// The `f64` set for `key`, else its default. Integer options are converted.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.get_value(key)? {
            None => Ok(None),
            Some((_, Value::F64(f))) => Ok(Some(f)),
            Some((_, Value::U32(n))) => Ok(Some(f64::from(n))),
            // Precision loss above 2^53 is acceptable for a config value read as a float.
            Some((_, Value::U64(n))) => Ok(Some(n as f64)),
            Some((opt, v)) => Err(Self::wrong_kind(opt, &v, "a floating-point number")),
        }
    }

    /// The boolean set for `key`, else its default.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get_value(key)? {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(b)),
            Some((opt, v)) => Err(Self::wrong_kind(opt, &v, "a boolean")),
        }
    }

    /// The value set for `key`, else its default, as a string. Enum values come back in the
    /// canonical spelling (`at_least_once` → `AT_LEAST_ONCE`, `fixeddelay` → `fixed-delay`);
    /// any other kind is returned as written.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let opt = lookup(key)?;
        let raw = match self.values.get(opt.key) {
            Some(v) => v.as_str(),
            None => match opt.default {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        match opt.kind {
            ValueKind::Enum(_) => match parse_value(opt, raw)? {
                Value::String(s) => Ok(Some(s)),
                other => Err(Self::wrong_kind(opt, &other, "a string")),
            },
            _ => Ok(Some(raw.to_string())),
        }
    }

    /// The explicitly set values as `(canonical key, value)`, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// Stores a value for a known option without validating it. For writers that already
    /// hold typed values (e.g. `RestartStrategy::to_config`) and must not fail; the getters
    /// still validate on read. Unknown keys are ignored.
    pub(crate) fn insert_unchecked(&mut self, key: &str, value: String) {
        if let Some(opt) = find_option(key) {
            self.values.insert(opt.key, value);
        }
    }
}

/// Parses a duration the way Flink's `TimeUtils.parseDuration` does: a non-negative integer
/// followed by an optional unit (none means milliseconds), whitespace between them optional,
/// units case-insensitive.
///
/// Units: `d`/`day(s)`, `h`/`hour(s)`, `min`/`m`/`minute(s)`, `s`/`sec(s)`/`second(s)`,
/// `ms`/`milli(s)`/`millisecond(s)`, `µs`/`us`/`micro(s)`/`microsecond(s)`,
/// `ns`/`nano(s)`/`nanosecond(s)`.
///
/// ```
/// use floe::config::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("5000"), Ok(Duration::from_secs(5)));
/// assert_eq!(parse_duration("2 min"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("1.5 s").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(format!("{DURATION_HINT}, got an empty string"));
    }
    if trimmed.starts_with('-') {
        return Err(format!("durations must not be negative; {DURATION_HINT}"));
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, rest) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(DURATION_HINT.to_string());
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("the number '{number}' is too large (numeric overflow)"))?;
    let unit = rest.trim().to_lowercase();
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(
            "fractional durations are not supported; use a smaller unit such as '1500 ms'"
                .to_string(),
        );
    }
    let overflow = || format!("the duration '{trimmed}' is too large (numeric overflow)");
    let from_secs = |mult: u64| {
        value
            .checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(overflow)
    };
    match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => {
            Ok(Duration::from_millis(value))
        }
        "d" | "day" | "days" => from_secs(86_400),
        "h" | "hour" | "hours" => from_secs(3_600),
        "min" | "m" | "minute" | "minutes" => from_secs(60),
        "s" | "sec" | "secs" | "second" | "seconds" => from_secs(1),
        // Both the micro sign (U+00B5) and the Greek mu (U+03BC) appear in the wild.
        "µs" | "μs" | "us" | "micro" | "micros" | "microsecond" | "microseconds" => {
            Ok(Duration::from_micros(value))
        }
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => Ok(Duration::from_nanos(value)),
        other => Err(format!(
            "unknown time unit '{other}'; use one of d, h, min, s, ms, us, ns"
        )),
    }
}

/// Formats a duration like Flink's `TimeUtils.formatWithHighestUnit`: the largest unit that
/// divides it exactly, so the result parses back to the same value. Zero is `0 ms`.
///
/// ```
/// use floe::config::format_duration;
/// use std::time::Duration;
/// assert_eq!(format_duration(Duration::from_millis(500)), "500 ms");
/// assert_eq!(format_duration(Duration::from_secs(120)), "2 min");
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500 ms");
/// ```
pub fn format_duration(d: Duration) -> String {
    const UNITS: &[(u128, &str)] = &[
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "min"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "µs"),
        (1, "ns"),
    ];
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0 ms".to_string();
    }
    for &(unit, label) in UNITS {
        if nanos.is_multiple_of(unit) {
            return format!("{} {label}", nanos / unit);
        }
    }
    format!("{nanos} ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    // ---- parse_duration ----------------------------------------------------------------

    #[test]
    fn parse_duration_every_documented_form() {
        let cases: &[(&str, Duration)] = &[
            ("5000", ms(5000)),
            ("0", ms(0)),
            ("5 s", Duration::from_secs(5)),
            ("5s", Duration::from_secs(5)),
            ("5 sec", Duration::from_secs(5)),
            ("5 secs", Duration::from_secs(5)),
            ("5 second", Duration::from_secs(5)),
            ("5 seconds", Duration::from_secs(5)),
            ("500 ms", ms(500)),
            ("500ms", ms(500)),
            ("500 milli", ms(500)),
            ("500 millis", ms(500)),
            ("500 millisecond", ms(500)),
            ("500 milliseconds", ms(500)),
            ("2 min", Duration::from_secs(120)),
            ("2min", Duration::from_secs(120)),
            ("2 m", Duration::from_secs(120)),
            ("2 minute", Duration::from_secs(120)),
            ("2 minutes", Duration::from_secs(120)),
            ("1 h", Duration::from_secs(3600)),
            ("1 hour", Duration::from_secs(3600)),
            ("3 hours", Duration::from_secs(3 * 3600)),
            ("1 d", Duration::from_secs(86_400)),
            ("1 day", Duration::from_secs(86_400)),
            ("2 days", Duration::from_secs(2 * 86_400)),
            ("100 us", Duration::from_micros(100)),
            ("100 µs", Duration::from_micros(100)),
            ("100 μs", Duration::from_micros(100)),
            ("100 micro", Duration::from_micros(100)),
            ("100 microseconds", Duration::from_micros(100)),
            ("10 ns", Duration::from_nanos(10)),
            ("10 nano", Duration::from_nanos(10)),
            ("10 nanoseconds", Duration::from_nanos(10)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_duration(input).as_ref(),
                Ok(expected),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn parse_duration_is_case_and_whitespace_insensitive() {
        assert_eq!(parse_duration("  5 S  "), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5\tSeConDs"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1 MIN"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("7 MS"), Ok(ms(7)));
        assert_eq!(parse_duration("1 H"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn parse_duration_errors() {
        let empty = parse_duration("").unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
        assert!(parse_duration("   ").unwrap_err().contains("empty"));
        assert_eq!(parse_duration("abc").unwrap_err(), DURATION_HINT);
        assert_eq!(parse_duration("s").unwrap_err(), DURATION_HINT);
        assert!(parse_duration("-5 s").unwrap_err().contains("negative"));
        assert!(parse_duration("+5 s").is_err());
        assert!(parse_duration("1.5 s").unwrap_err().contains("fractional"));
        let unknown = parse_duration("5 parsecs").unwrap_err();
        assert_eq!(
            unknown,
            "unknown time unit 'parsecs'; use one of d, h, min, s, ms, us, ns"
        );
        assert!(parse_duration("5 s x")
            .unwrap_err()
            .contains("unknown time unit 's x'"));
        // Larger than u64 at all.
        assert!(parse_duration("99999999999999999999999")
            .unwrap_err()
            .contains("overflow"));
        // Fits u64 but not once converted to seconds.
        assert!(parse_duration("18446744073709551615 d")
            .unwrap_err()
            .contains("overflow"));
        // Sub-second units never overflow std's Duration.
        assert!(parse_duration("18446744073709551615 ms").is_ok());
    }

    // ---- format_duration ----------------------------------------------------------------

    #[test]
    fn format_duration_picks_largest_exact_unit() {
        assert_eq!(format_duration(Duration::ZERO), "0 ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5 s");
        assert_eq!(format_duration(ms(500)), "500 ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2 min");
        assert_eq!(format_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1 h");
        assert_eq!(format_duration(Duration::from_secs(86_400)), "1 d");
        assert_eq!(
            format_duration(Duration::from_secs(2 * 86_400 + 3600)),
            "49 h"
        );
        assert_eq!(format_duration(ms(1500)), "1500 ms");
        assert_eq!(format_duration(Duration::from_micros(100)), "100 µs");
        assert_eq!(format_duration(Duration::from_nanos(10)), "10 ns");
        assert_eq!(
            format_duration(Duration::from_nanos(1_000_001)),
            "1000001 ns"
        );
    }

    #[test]
    fn format_duration_round_trips() {
        let samples = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_micros(7),
            ms(1),
            ms(10),
            ms(1500),
            Duration::from_secs(1),
            Duration::from_secs(59),
            Duration::from_secs(61),
            Duration::from_secs(600),
            Duration::from_secs(3600),
            Duration::from_secs(7 * 86_400),
            Duration::new(12, 345_678_901),
            Duration::from_secs(u64::MAX / 86_400 * 86_400),
        ];
        for d in samples {
            let s = format_duration(d);
            assert_eq!(parse_duration(&s), Ok(d), "round trip of {d:?} via {s:?}");
        }
    }

    // ---- option table --------------------------------------------------------------------

    #[test]
    fn every_default_is_valid_for_its_option() {
        for opt in OPTIONS {
            if let Some(d) = opt.default {
                assert!(
                    parse_value(opt, d).is_ok(),
                    "default of {} is invalid: {d}",
                    opt.key
                );
            }
        }
    }

    #[test]
    fn keys_and_aliases_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for opt in OPTIONS {
            assert!(seen.insert(opt.key), "duplicate {}", opt.key);
            for a in opt.aliases {
                assert!(seen.insert(a), "duplicate {a}");
            }
            assert!(!opt.description.is_empty());
        }
    }

    #[test]
    fn defaults_match_flink() {
        let c = Configuration::new();
        assert_eq!(
            c.get_duration("execution.checkpointing.interval").unwrap(),
            None
        );
        assert_eq!(
            c.get_string("execution.checkpointing.mode")
                .unwrap()
                .as_deref(),
            Some("EXACTLY_ONCE")
        );
        assert_eq!(
            c.get_duration("execution.checkpointing.timeout").unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            c.get_duration("execution.checkpointing.min-pause").unwrap(),
            Some(ms(0))
        );
        assert_eq!(
            c.get_u32("execution.checkpointing.max-concurrent-checkpoints")
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            c.get_u32("execution.checkpointing.tolerable-failed-checkpoints")
                .unwrap(),
            Some(0)
        );
        assert_eq!(
            c.get_string("execution.checkpointing.externalized-checkpoint-retention")
                .unwrap()
                .as_deref(),
            Some("NO_EXTERNALIZED_CHECKPOINTS")
        );
        assert_eq!(
            c.get_u32("execution.checkpointing.num-retained").unwrap(),
            Some(1)
        );
        assert_eq!(c.get_string("execution.checkpointing.dir").unwrap(), None);
        assert_eq!(
            c.get_string("execution.checkpointing.savepoint-dir")
                .unwrap(),
            None
        );
        assert_eq!(c.get_string("execution.state-recovery.path").unwrap(), None);
        assert_eq!(
            c.get_bool("execution.state-recovery.ignore-unclaimed-state")
                .unwrap(),
            Some(false)
        );
        assert_eq!(c.get_string("restart-strategy.type").unwrap(), None);
        assert_eq!(
            c.get_u32("restart-strategy.fixed-delay.attempts").unwrap(),
            Some(1)
        );
        assert_eq!(
            c.get_duration("restart-strategy.fixed-delay.delay")
                .unwrap(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            c.get_u32("restart-strategy.failure-rate.max-failures-per-interval")
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            c.get_duration("restart-strategy.failure-rate.failure-rate-interval")
                .unwrap(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            c.get_duration("restart-strategy.failure-rate.delay")
                .unwrap(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            c.get_duration("restart-strategy.exponential-delay.initial-backoff")
                .unwrap(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            c.get_duration("restart-strategy.exponential-delay.max-backoff")
                .unwrap(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            c.get_f64("restart-strategy.exponential-delay.backoff-multiplier")
                .unwrap(),
            Some(1.5)
        );
        assert_eq!(
            c.get_duration("restart-strategy.exponential-delay.reset-backoff-threshold")
                .unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            c.get_f64("restart-strategy.exponential-delay.jitter-factor")
                .unwrap(),
            Some(0.1)
        );
        assert_eq!(
            c.get_u32("restart-strategy.exponential-delay.attempts-before-reset-backoff")
                .unwrap(),
            None
        );
        assert_eq!(c.get_u32("parallelism.default").unwrap(), Some(1));
        assert_eq!(c.get_u32("pipeline.max-parallelism").unwrap(), Some(128));
        assert_eq!(c.get_string("pipeline.name").unwrap(), None);
        assert_eq!(
            c.get_string("rest.address").unwrap().as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(c.get_u32("rest.port").unwrap(), Some(8081));
        assert_eq!(c.get_u64("rest.port").unwrap(), Some(8081));
        assert_eq!(
            c.get_string("rest.bind-address").unwrap().as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(c.iter().count(), 0, "defaults are not listed as set values");
    }

    // ---- aliases ---------------------------------------------------------------------------

    #[test]
    fn aliases_resolve_to_canonical_keys() {
        let pairs = [
            (
                "state.checkpoints.num-retained",
                "execution.checkpointing.num-retained",
                "3",
            ),
            (
                "state.checkpoints.dir",
                "execution.checkpointing.dir",
                "file:///tmp/ck",
            ),
            (
                "state.backend.fs.checkpointdir",
                "execution.checkpointing.dir",
                "/tmp/ck2",
            ),
            (
                "state.savepoints.dir",
                "execution.checkpointing.savepoint-dir",
                "s3://b/sp",
            ),
            (
                "execution.savepoint.path",
                "execution.state-recovery.path",
                "/tmp/sp/_metadata",
            ),
            (
                "execution.savepoint.ignore-unclaimed-state",
                "execution.state-recovery.ignore-unclaimed-state",
                "true",
            ),
            ("restart-strategy", "restart-strategy.type", "none"),
        ];
        for (alias, canonical, value) in pairs {
            let mut c = Configuration::new();
            c.set(alias, value).unwrap();
            assert_eq!(c.get_raw(canonical), Some(value), "{alias}");
            assert_eq!(c.get_raw(alias), Some(value), "{alias}");
            assert!(c.contains(alias) && c.contains(canonical));
            let listed: Vec<_> = c.iter().collect();
            assert_eq!(listed, vec![(canonical, value)], "iter shows canonical key");
        }
    }

    #[test]
    fn later_alias_overrides_earlier_canonical() {
        let mut c = Configuration::new();
        c.set("execution.checkpointing.dir", "/a").unwrap();
        c.set("state.checkpoints.dir", "/b").unwrap();
        assert_eq!(c.get_raw("execution.checkpointing.dir"), Some("/b"));
        assert_eq!(c.iter().count(), 1);
    }

    // ---- unknown keys ----------------------------------------------------------------------

    #[test]
    fn unknown_key_with_suggestion() {
        let err = Configuration::new()
            .set("execution.checkpointing.intervall", "5 s")
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "execution.checkpointing.intervall".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown configuration key 'execution.checkpointing.intervall'; \
             did you mean 'execution.checkpointing.interval'?"
        );
    }

    #[test]
    fn unknown_key_suggests_aliases_too() {
        let err = Configuration::new()
            .set("state.checkpoint.dir", "/x")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown configuration key 'state.checkpoint.dir'; did you mean 'state.checkpoints.dir'?"
        );
    }

    #[test]
    fn unknown_key_without_suggestion() {
        let err = Configuration::new()
            .set("totally.different", "1")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown configuration key 'totally.different'"
        );
        // Distance 4 is too far.
        let err = Configuration::new().set("rest.portxxxx", "1").unwrap_err();
        assert_eq!(err.to_string(), "unknown configuration key 'rest.portxxxx'");
        let err = Configuration::new().set("rest.porxxx", "1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown configuration key 'rest.porxxx'; did you mean 'rest.port'?"
        );
    }

    #[test]
    fn typed_getters_reject_unknown_keys() {
        let c = Configuration::new();
        assert!(matches!(
            c.get_duration("nope"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            c.get_u32("nope"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            c.get_u64("nope"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            c.get_f64("nope"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            c.get_bool("nope"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            c.get_string("nope"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert_eq!(c.get_raw("nope"), None);
        assert!(!c.contains("nope"));
    }

    #[test]
    fn typed_getter_of_wrong_kind_is_an_error_not_a_panic() {
        let c = Configuration::new();
        let err = c.get_u32("rest.address").unwrap_err();
        assert!(err.to_string().contains("option holds a string"), "{err}");
        assert!(c.get_bool("rest.port").is_err());
        assert!(c.get_duration("rest.port").is_err());
        // Strings can be read from any option.
        assert_eq!(c.get_string("rest.port").unwrap().as_deref(), Some("8081"));
        assert_eq!(c.get_f64("rest.port").unwrap(), Some(8081.0));
    }

    // ---- value validation ------------------------------------------------------------------

    #[test]
    fn invalid_duration_message() {
        let err = Configuration::new()
            .set("execution.checkpointing.interval", "abc")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'abc' for configuration key 'execution.checkpointing.interval': \
             expected a duration such as '5 s', '500 ms' or '1 min'"
        );
    }

    #[test]
    fn invalid_value_names_canonical_key_when_set_via_alias() {
        let err = Configuration::new()
            .set("state.checkpoints.num-retained", "0")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value '0' for configuration key 'execution.checkpointing.num-retained': \
             must be at least 1"
        );
    }

    #[test]
    fn checkpoint_interval_minimum() {
        let mut c = Configuration::new();
        let err = c
            .set("execution.checkpointing.interval", "9 ms")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value '9 ms' for configuration key 'execution.checkpointing.interval': \
             Checkpoint interval must be larger than or equal to 10 ms"
        );
        c.set("execution.checkpointing.interval", "10").unwrap();
        assert_eq!(
            c.get_duration("execution.checkpointing.interval").unwrap(),
            Some(ms(10))
        );
        assert!(c.set("execution.checkpointing.timeout", "5 ms").is_err());
        c.set("execution.checkpointing.timeout", "10 ms").unwrap();
    }

    #[test]
    fn integer_ranges() {
        let mut c = Configuration::new();
        for (key, bad, good) in [
            (
                "execution.checkpointing.max-concurrent-checkpoints",
                "0",
                "2",
            ),
            ("execution.checkpointing.num-retained", "0", "5"),
            ("parallelism.default", "0", "8"),
            ("pipeline.max-parallelism", "32769", "32768"),
            ("pipeline.max-parallelism", "0", "1"),
            ("rest.port", "65536", "65535"),
            ("rest.port", "-1", "8082"),
            ("rest.port", "80.5", "80"),
            (
                "execution.checkpointing.tolerable-failed-checkpoints",
                "-1",
                "0",
            ),
            (
                "restart-strategy.fixed-delay.attempts",
                "4294967296",
                "4294967295",
            ),
        ] {
            assert!(
                matches!(c.set(key, bad), Err(ConfigError::InvalidValue { .. })),
                "{key}={bad} should fail"
            );
            c.set(key, good).unwrap();
            assert_eq!(c.get_u32(key).unwrap(), Some(good.parse().unwrap()));
        }
        let err = c.set("rest.port", "70000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value '70000' for configuration key 'rest.port': must be between 0 and 65535"
        );
        let err = c.set("rest.port", "eighty").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'eighty' for configuration key 'rest.port': \
             expected an unsigned 32-bit integer"
        );
    }

    #[test]
    fn float_ranges() {
        let mut c = Configuration::new();
        let m = "restart-strategy.exponential-delay.backoff-multiplier";
        let j = "restart-strategy.exponential-delay.jitter-factor";
        assert!(c.set(m, "0.9").is_err());
        assert!(c.set(m, "NaN").is_err());
        assert!(c.set(m, "inf").is_err());
        assert!(c.set(m, "two").is_err());
        c.set(m, "1.0").unwrap();
        c.set(m, "2").unwrap();
        assert_eq!(c.get_f64(m).unwrap(), Some(2.0));
        assert!(c.set(j, "-0.1").is_err());
        assert!(c.set(j, "1.01").is_err());
        c.set(j, "0").unwrap();
        c.set(j, "1").unwrap();
        c.set(j, "0.25").unwrap();
        assert_eq!(c.get_f64(j).unwrap(), Some(0.25));
        assert_eq!(
            c.set(j, "2").unwrap_err().to_string(),
            "invalid value '2' for configuration key \
             'restart-strategy.exponential-delay.jitter-factor': must be between 0.0 and 1.0"
        );
    }

    #[test]
    fn booleans_accept_any_case() {
        let mut c = Configuration::new();
        let k = "execution.state-recovery.ignore-unclaimed-state";
        for (v, b) in [
            ("true", true),
            ("TRUE", true),
            ("True", true),
            ("false", false),
            ("FaLsE", false),
        ] {
            c.set(k, v).unwrap();
            assert_eq!(c.get_bool(k).unwrap(), Some(b));
        }
        let err = c.set(k, "yes").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value 'yes' for configuration key \
             'execution.state-recovery.ignore-unclaimed-state': expected true or false"
        );
    }

    #[test]
    fn enum_normalisation() {
        let mut c = Configuration::new();
        c.set("execution.checkpointing.mode", "at_least_once")
            .unwrap();
        assert_eq!(
            c.get_raw("execution.checkpointing.mode"),
            Some("at_least_once")
        );
        assert_eq!(
            c.get_string("execution.checkpointing.mode")
                .unwrap()
                .as_deref(),
            Some("AT_LEAST_ONCE")
        );
        c.set(
            "execution.checkpointing.externalized-checkpoint-retention",
            "retain_on_cancellation",
        )
        .unwrap();
        assert_eq!(
            c.get_string("execution.checkpointing.externalized-checkpoint-retention")
                .unwrap()
                .as_deref(),
            Some("RETAIN_ON_CANCELLATION")
        );
        for (given, canonical) in [
            ("none", "none"),
            ("NONE", "none"),
            ("disable", "none"),
            ("off", "none"),
            ("Off", "none"),
            ("fixed-delay", "fixed-delay"),
            ("fixeddelay", "fixed-delay"),
            ("FixedDelay", "fixed-delay"),
            ("failure-rate", "failure-rate"),
            ("failurerate", "failure-rate"),
            ("exponential-delay", "exponential-delay"),
            ("exponentialdelay", "exponential-delay"),
            ("EXPONENTIAL-DELAY", "exponential-delay"),
        ] {
            c.set("restart-strategy", given).unwrap();
            assert_eq!(
                c.get_string("restart-strategy.type").unwrap().as_deref(),
                Some(canonical),
                "{given}"
            );
        }
    }

    #[test]
    fn enum_errors_list_allowed_values() {
        let mut c = Configuration::new();
        assert_eq!(
            c.set("execution.checkpointing.mode", "exactly-once")
                .unwrap_err()
                .to_string(),
            "invalid value 'exactly-once' for configuration key 'execution.checkpointing.mode': \
             expected one of EXACTLY_ONCE, AT_LEAST_ONCE"
        );
        assert_eq!(
            c.set("restart-strategy.type", "sometimes")
                .unwrap_err()
                .to_string(),
            "invalid value 'sometimes' for configuration key 'restart-strategy.type': \
             expected one of none, fixed-delay, failure-rate, exponential-delay \
             (or disable, off, fixeddelay, failurerate, exponentialdelay)"
        );
        // Enum aliases are per option: 'off' is not a checkpointing mode.
        assert!(c.set("execution.checkpointing.mode", "off").is_err());
    }

    #[test]
    fn values_are_trimmed() {
        let mut c = Configuration::new();
        c.set("rest.address", "  0.0.0.0 ").unwrap();
        assert_eq!(c.get_raw("rest.address"), Some("0.0.0.0"));
        c.set(" rest.port ", " 9000 ").unwrap();
        assert_eq!(c.get_u32("rest.port").unwrap(), Some(9000));
    }

    #[test]
    fn failed_set_leaves_previous_value() {
        let mut c = Configuration::new();
        c.set("rest.port", "9000").unwrap();
        assert!(c.set("rest.port", "nope").is_err());
        assert_eq!(c.get_raw("rest.port"), Some("9000"));
    }

    #[test]
    fn error_messages_stay_on_one_line() {
        let err = Configuration::new().set("rest.port", "80\n81").unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("80\\n81"), "{msg}");
        let err = Configuration::new().set_dynamic("a\nb").unwrap_err();
        assert!(!err.to_string().contains('\n'));
    }

    // ---- dynamic properties ------------------------------------------------------------------

    #[test]
    fn dynamic_property_parsing() {
        let mut c = Configuration::new();
        c.set_dynamic("execution.checkpointing.interval=5 s")
            .unwrap();
        assert_eq!(
            c.get_duration("execution.checkpointing.interval").unwrap(),
            Some(Duration::from_secs(5))
        );
        // '=' inside the value belongs to the value.
        c.set_dynamic("execution.checkpointing.dir=s3://bucket/p?a=b&c=d")
            .unwrap();
        assert_eq!(
            c.get_raw("execution.checkpointing.dir"),
            Some("s3://bucket/p?a=b&c=d")
        );
        c.set_dynamic("pipeline.name==leading").unwrap();
        assert_eq!(c.get_raw("pipeline.name"), Some("=leading"));
        // Spaces around the key are ignored.
        c.set_dynamic("  rest.port  =9091").unwrap();
        assert_eq!(c.get_u32("rest.port").unwrap(), Some(9091));
        // Aliases work through -D too.
        c.set_dynamic("state.savepoints.dir=/tmp/sp").unwrap();
        assert_eq!(
            c.get_raw("execution.checkpointing.savepoint-dir"),
            Some("/tmp/sp")
        );
        // An empty value is still a value for string options.
        c.set_dynamic("pipeline.name=").unwrap();
        assert_eq!(c.get_raw("pipeline.name"), Some(""));
    }

    #[test]
    fn dynamic_property_errors() {
        let mut c = Configuration::new();
        let err = c.set_dynamic("foo").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Malformed {
                entry: "foo".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "malformed dynamic property 'foo' (expected key=value)"
        );
        assert!(matches!(
            c.set_dynamic("=5"),
            Err(ConfigError::Malformed { .. })
        ));
        assert!(matches!(
            c.set_dynamic("  = 5"),
            Err(ConfigError::Malformed { .. })
        ));
        assert!(matches!(
            c.set_dynamic(""),
            Err(ConfigError::Malformed { .. })
        ));
        assert!(matches!(
            c.set_dynamic("foo.bar=1"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            c.set_dynamic("rest.port=x"),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    // ---- merge / remove / iter -------------------------------------------------------------

    #[test]
    fn merge_overlays_other() {
        let mut base = Configuration::new();
        base.set("rest.port", "9000").unwrap();
        base.set("parallelism.default", "2").unwrap();
        let mut over = Configuration::new();
        over.set("parallelism.default", "4").unwrap();
        over.set("state.checkpoints.dir", "/ck").unwrap();
        base.merge(&over);
        assert_eq!(base.get_u32("rest.port").unwrap(), Some(9000));
        assert_eq!(base.get_u32("parallelism.default").unwrap(), Some(4));
        assert_eq!(base.get_raw("execution.checkpointing.dir"), Some("/ck"));
        let keys: Vec<&str> = base.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec![
                "execution.checkpointing.dir",
                "parallelism.default",
                "rest.port"
            ],
            "iter is sorted by canonical key"
        );
        // Merging an empty configuration changes nothing.
        let snapshot = base.clone();
        base.merge(&Configuration::new());
        assert_eq!(base, snapshot);
    }

    #[test]
    fn remove_restores_default() {
        let mut c = Configuration::new();
        c.set("state.checkpoints.num-retained", "4").unwrap();
        assert_eq!(
            c.remove("execution.checkpointing.num-retained").as_deref(),
            Some("4")
        );
        assert_eq!(
            c.get_u32("execution.checkpointing.num-retained").unwrap(),
            Some(1)
        );
        assert_eq!(c.remove("execution.checkpointing.num-retained"), None);
        assert_eq!(c.remove("unknown.key"), None);
    }

    #[test]
    fn unchecked_values_are_validated_on_read() {
        let mut c = Configuration::new();
        c.insert_unchecked(
            "restart-strategy.exponential-delay.jitter-factor",
            "3".into(),
        );
        assert!(matches!(
            c.get_f64("restart-strategy.exponential-delay.jitter-factor"),
            Err(ConfigError::InvalidValue { .. })
        ));
        c.insert_unchecked("no.such.key", "1".into());
        assert_eq!(c.iter().count(), 1);
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("rest.port", "rest.port"), 0);
        assert_eq!(edit_distance("µs", "us"), 1);
    }

    #[test]
    fn exception_history_size_and_heartbeats_are_validated() {
        let c = Configuration::new();
        assert_eq!(c.get_u32("web.exception-history-size").unwrap(), Some(16));
        let mut c = Configuration::new();
        c.set("web.exception-history-size", "4").unwrap();
        assert_eq!(c.get_u32("web.exception-history-size").unwrap(), Some(4));
        for bad in ["-1", "many", "1.5"] {
            let e = c
                .set("web.exception-history-size", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("web.exception-history-size") && !e.contains('\n'),
                "{e}"
            );
        }
        for key in ["heartbeat.interval", "heartbeat.timeout"] {
            let e = c.set(key, "0 ms").unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("must be larger than 0"),
                "{e}"
            );
        }
    }
}
