//! Command-line parameters of a job binary, like Flink's `ParameterTool`.

use crate::Result;
use std::collections::BTreeMap;

/// The job's own arguments (`--host h --port 9999`), after Floe's options
/// (`-s`, `-p`, `-D`, `-n`) have been taken out by [`crate::StreamEnv::from_args`].
///
/// ```
/// use floe::prelude::JobParams;
/// let p = JobParams::parse(["--host", "localhost", "--port", "9999", "--verbose"]).unwrap();
/// assert_eq!(p.get("host"), Some("localhost"));
/// assert_eq!(p.get_parsed::<u16>("port").unwrap(), Some(9999));
/// assert!(p.has("verbose"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct JobParams {
    values: BTreeMap<String, Option<String>>,
    positional: Vec<String>,
}

impl JobParams {
    /// Parses `--key value`, `--key=value` and bare `--flag` arguments; anything else is positional.
    pub fn parse<I, S>(args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut p = JobParams::default();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if let Some(name) = a.strip_prefix("--").or_else(|| {
                a.strip_prefix('-')
                    .filter(|n| !n.is_empty() && n.parse::<f64>().is_err())
            }) {
                if let Some((k, v)) = name.split_once('=') {
                    p.values.insert(k.to_string(), Some(v.to_string()));
                } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
                    p.values.insert(name.to_string(), Some(args[i + 1].clone()));
                    i += 1;
                } else {
                    p.values.insert(name.to_string(), None);
                }
            } else {
                p.positional.push(a.clone());
            }
            i += 1;
        }
        Ok(p)
    }

    /// The value of `--name`, if given with a value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.as_deref())
    }

    /// The value of `--name` or `default`.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// The value of `--name`, which must be present.
    pub fn required(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| crate::anyhow!("missing required argument --{name}"))
    }

    /// The value of `--name` parsed as `T`; an unparseable value is an error naming the argument.
    pub fn get_parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|e| crate::anyhow!("invalid value '{v}' for argument --{name}: {e}")),
        }
    }

    /// True when `--name` was given, with or without a value.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Arguments that were not `--key` options.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }
}
