//! The configuration file: `floe.yaml` in the directory named by `FLOE_CONF_DIR`.
//!
//! Standard YAML, as Flink 2.x's `config.yaml`: keys may be written flat
//! (`execution.checkpointing.interval: 5 s`) or nested (`execution: {checkpointing: {interval: 5 s}}`);
//! nested maps are joined with dots. The seeds' 1.x key names are accepted as aliases.
//! Flink's own `config.yaml` loads as is: keys Floe honours take effect, values it cannot
//! honour are refused with the reason, and keys of Flink's JVM deployment (memory, RPC,
//! slots, ...) are listed in one warning (see [`super::options`]).
//! `-D key=value` overrides the file, and settings made in job code override both.
//!
//! ```yaml
//! execution:
//!   checkpointing:
//!     interval: 5 s
//!     dir: file:///var/floe/checkpoints
//! state.savepoints.dir: /var/floe/savepoints
//! restart-strategy.type: fixed-delay
//! ```

use super::Configuration;
use crate::Result;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// File name of the configuration file.
pub const CONF_FILE: &str = "floe.yaml";
/// Flink's name for the same file: a Flink `conf/` directory works as Floe's.
pub const FLINK_CONF_FILE: &str = "config.yaml";
/// Environment variable naming the configuration directory.
pub const CONF_DIR_ENV: &str = "FLOE_CONF_DIR";

/// The configuration file of a configuration directory: `floe.yaml`, else Flink's
/// `config.yaml` when only that exists (so `FLOE_CONF_DIR=$FLINK_HOME/conf` works).
///
/// ```
/// use floe::config::file::conf_file_in;
/// let dir = tempfile::tempdir().unwrap();
/// assert!(conf_file_in(dir.path()).ends_with("floe.yaml"));
/// std::fs::write(dir.path().join("config.yaml"), "").unwrap();
/// assert!(conf_file_in(dir.path()).ends_with("config.yaml"));
/// std::fs::write(dir.path().join("floe.yaml"), "").unwrap();
/// assert!(conf_file_in(dir.path()).ends_with("floe.yaml"));
/// ```
pub fn conf_file_in(dir: &Path) -> PathBuf {
    let floe = dir.join(CONF_FILE);
    let flink = dir.join(FLINK_CONF_FILE);
    if !floe.exists() && flink.is_file() {
        flink
    } else {
        floe
    }
}

/// The configuration file of the directory named by `FLOE_CONF_DIR`, if the variable is set.
pub fn conf_file_from_env() -> Option<PathBuf> {
    std::env::var_os(CONF_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(|d| conf_file_in(Path::new(&d)))
}

/// Loads the file of `$FLOE_CONF_DIR` (which must then exist and be valid), else the one of
/// `conf/` in the working directory when there is one, else nothing.
pub fn load_from_env() -> Result<Configuration> {
    match conf_file_from_env() {
        Some(p) => load_file(&p),
        None => {
            let local = conf_file_in(Path::new("conf"));
            if local.is_file() {
                load_file(&local)
            } else {
                Ok(Configuration::new())
            }
        }
    }
}

/// Loads a configuration file. Every error names the file and what is wrong in it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("floe.yaml");
/// std::fs::write(&p, "execution:\n  checkpointing:\n    interval: 5 s\nstate.checkpoints.num-retained: 3\n").unwrap();
/// let c = floe::config::file::load_file(&p).unwrap();
/// assert_eq!(c.get_u32("execution.checkpointing.num-retained").unwrap(), Some(3));
/// ```
///
/// Logs which file it reads and every property in it, as Flink does ("Loading configuration
/// property: key, value"), with the values of secret keys (`token`, `password`, `secret`)
/// hidden.
pub fn load_file(path: &Path) -> Result<Configuration> {
    tracing::info!("Loading configuration file {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::anyhow!("cannot read configuration file {}: {e}", path.display()))?;
    let conf = parse(&text)
        .map_err(|e| crate::anyhow!("invalid configuration file {}: {e}", path.display()))?;
    for (k, v) in conf.iter() {
        let v = if is_sensitive(k) { "******" } else { v };
        tracing::info!("Loading configuration property: {k}, {v}");
    }
    warn_ignored(&conf, &path.display().to_string());
    Ok(conf)
}

/// The one warning line for the Flink keys in `conf` that Floe accepts without acting on
/// them ([`super::options::IGNORED_FLINK_KEYS`]), naming where they came from.
pub(crate) fn warn_ignored(conf: &Configuration, source: &str) {
    if let Some(line) = ignored_warning(conf, source) {
        tracing::warn!("{line}");
    }
}

fn ignored_warning(conf: &Configuration, source: &str) -> Option<String> {
    let keys: Vec<&str> = conf.ignored_keys().collect();
    if keys.is_empty() {
        return None;
    }
    Some(format!(
        "Ignoring {} Flink configuration key(s) from {source} that configure Flink's JVM processes (JVM options, memory, actor system, BLOB server settings, class loading) and mean nothing to Floe: {}",
        keys.len(),
        keys.join(", ")
    ))
}

/// Keys whose values are not logged (Flink's `GlobalConfiguration.isSensitive`).
fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|s| k.contains(s))
}

/// Parses configuration YAML.
pub fn parse(text: &str) -> Result<Configuration> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| crate::anyhow!("{e}"))?;
    let mut conf = Configuration::new();
    match docs.len() {
        0 => return Ok(conf),
        1 => {}
        n => crate::bail!("expected one YAML document, found {n}"),
    }
    match &docs[0] {
        Yaml::Hash(_) => flatten("", &docs[0], &mut conf)?,
        Yaml::Null => {}
        _ => crate::bail!("expected a mapping of configuration keys at the top level"),
    }
    Ok(conf)
}

fn flatten(prefix: &str, node: &Yaml, conf: &mut Configuration) -> Result<()> {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => crate::bail!("unsupported key {other:?} under '{prefix}'"),
                };
                let full = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&full, v, conf)?;
            }
            Ok(())
        }
        Yaml::String(s) | Yaml::Real(s) => Ok(conf.set(prefix, s)?),
        Yaml::Integer(i) => Ok(conf.set(prefix, &i.to_string())?),
        Yaml::Boolean(b) => Ok(conf.set(prefix, &b.to_string())?),
        Yaml::Null => crate::bail!("configuration key '{prefix}' has no value"),
        Yaml::Array(_) => crate::bail!(
            "configuration key '{prefix}' has a list value; a single value is expected"
        ),
        _ => crate::bail!("configuration key '{prefix}' has an unsupported value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nested_flat_and_aliases() {
        let c = parse(
            "execution:\n  checkpointing:\n    interval: 5 s\n    timeout: 60000\nstate.savepoints.dir: /sp\nrestart-strategy: fixeddelay\nparallelism.default: 2\n",
        )
        .unwrap();
        assert_eq!(
            c.get_duration("execution.checkpointing.interval").unwrap(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            c.get_duration("execution.checkpointing.timeout").unwrap(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            c.get_string("execution.checkpointing.savepoint-dir")
                .unwrap()
                .as_deref(),
            Some("/sp")
        );
        assert_eq!(
            c.get_string("restart-strategy.type").unwrap().as_deref(),
            Some("fixed-delay")
        );
        assert_eq!(c.get_u32("parallelism.default").unwrap(), Some(2));
        assert!(parse("").unwrap().iter().next().is_none());
    }

    #[test]
    fn errors_name_the_key_or_the_problem() {
        let e = parse("execution.checkpointing.intervall: 5 s\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown configuration key 'execution.checkpointing.intervall'"),
            "{e}"
        );
        let e = parse("parallelism:\n  default: many\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'parallelism.default'") && e.contains("many"),
            "{e}"
        );
        let e = parse("pipeline.max-parallelism: [1, 2]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("list value"), "{e}");
        let e = parse("a: b: c\n").unwrap_err().to_string();
        assert!(!e.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let e = load_file(&dir.path().join("floe.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read configuration file") && e.contains("floe.yaml"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod flink_config_tests {
    use super::*;
    use crate::config::keys;

    /// Flink 2.3.0's `conf/config.yaml`, verbatim (from the apache-flink-libraries package).
    const FLINK_2_3: &str = include_str!("../../tests/data/flink-2.3-config.yaml");

    #[test]
    fn flink_2_3s_shipped_config_yaml_loads_with_its_jvm_keys_ignored() {
        let c = parse(FLINK_2_3).unwrap();
        assert_eq!(
            c.ignored_keys().collect::<Vec<_>>(),
            [
                "env.java.opts.all",
                "jobmanager.memory.process.size",
                "taskmanager.memory.process.size",
            ]
        );
        // What Floe honours takes effect.
        assert_eq!(c.get(keys::PARALLELISM_DEFAULT).unwrap(), Some(1));
        assert_eq!(
            c.get(keys::REST_ADDRESS).unwrap().as_deref(),
            Some("localhost")
        );
        assert_eq!(
            c.get(keys::FAILOVER_STRATEGY).unwrap().as_deref(),
            Some("region")
        );
        // No rest.port in the file: a job loading it serves no REST API.
        assert!(!c.is_set(keys::REST_PORT));
        let warning = ignored_warning(&c, "conf/floe.yaml").unwrap();
        assert!(!warning.contains('\n'), "{warning}");
        assert!(
            warning.starts_with("Ignoring 3 Flink configuration key(s) from conf/floe.yaml")
                && warning.ends_with("taskmanager.memory.process.size"),
            "{warning}"
        );
        assert_eq!(ignored_warning(&Configuration::new(), "x"), None);
    }

    #[test]
    fn the_commented_out_examples_of_the_shipped_file_load_as_well() {
        // The file's commented examples, with the first value of each choice: what a user
        // gets by uncommenting them.
        let c = parse(
            "execution:\n  checkpointing:\n    interval: 3min\n    externalized-checkpoint-retention: DELETE_ON_CANCELLATION\n    max-concurrent-checkpoints: 1\n    min-pause: 0\n    mode: EXACTLY_ONCE\n    timeout: 10min\n    tolerable-failed-checkpoints: 0\n    unaligned: false\n    incremental: false\n    dir: file:///tmp/flink-checkpoints\n    savepoint-dir: file:///tmp/flink-savepoints\nstate:\n  backend:\n    type: hashmap\nclassloader:\n  resolve:\n    order: child-first\ntaskmanager:\n  memory:\n    network:\n      fraction: 0.1\n",
        )
        .unwrap();
        assert_eq!(
            c.get(keys::CHECKPOINTING_INTERVAL).unwrap(),
            Some(std::time::Duration::from_secs(180))
        );
        assert_eq!(c.ignored_keys().count(), 2);
        let e = parse("state:\n  backend:\n    type: rocksdb\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Floe has no RocksDB state backend; use hashmap") && !e.contains('\n'),
            "{e}"
        );
    }
}
