//! A Flink user's `config.yaml` used as Floe's configuration file, through the real job
//! binary and `floe run`: Flink 2.3's shipped file loads with one warning, a value Floe
//! cannot honour fails the run with the reason.

mod common;

use common::{bin, floe_cli};
use std::path::Path;
use std::process::{Command, Output};

/// Flink 2.3.0's `conf/config.yaml`, verbatim (apache-flink-libraries 2.3.0).
const FLINK_2_3_CONFIG: &str = "../crates/floe/tests/data/flink-2.3-config.yaml";

/// A working directory with `conf/floe.yaml` holding `config` and an input file.
fn setup(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/floe.yaml"), config).unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/words.txt"), "a b a\n").unwrap();
    dir
}

fn run(program: &Path, pre: &[&str], dir: &Path) -> Output {
    let input = dir.join("in");
    let ck = dir.join("ck");
    Command::new(program)
        .args(pre)
        .arg(bin("file_word_count"))
        .args(["--input", input.to_str().unwrap()])
        .args(["--checkpoint-dir", ck.to_str().unwrap()])
        .env("FLOE_CONF_DIR", dir.join("conf"))
        .env("FLOE_LOG", "info")
        .output()
        .unwrap()
}

/// The binary itself, or `floe run` in front of it.
fn runs(dir: &Path) -> Vec<(&'static str, Output)> {
    let direct = {
        let input = dir.join("in");
        let ck = dir.join("ck-direct");
        Command::new(bin("file_word_count"))
            .args(["--input", input.to_str().unwrap()])
            .args(["--checkpoint-dir", ck.to_str().unwrap()])
            .env("FLOE_CONF_DIR", dir.join("conf"))
            .env("FLOE_LOG", "info")
            .output()
            .unwrap()
    };
    vec![
        ("job binary", direct),
        ("floe run", run(&floe_cli(), &["run"], dir)),
    ]
}

#[test]
fn flink_2_3s_shipped_config_yaml_loads_with_one_warning_listing_the_ignored_keys() {
    let config = std::fs::read_to_string(FLINK_2_3_CONFIG).unwrap();
    // The fixture is Flink's file, not a trimmed copy.
    assert!(
        config.contains("numberOfTaskSlots: 1") && config.contains("failover-strategy: region")
    );
    let dir = setup(&config);
    for (how, o) in runs(dir.path()) {
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{how}: {err}");
        assert!(
            out.contains("(a,2)") && out.contains("(b,1)"),
            "{how}: {out}"
        );
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains(" WARN ")).collect();
        assert_eq!(warnings.len(), 1, "{how}: {err}");
        assert!(
            warnings[0].contains("Ignoring 3 Flink configuration key(s)")
                && warnings[0].ends_with(
                    "env.java.opts.all, jobmanager.memory.process.size, taskmanager.memory.process.size"
                ),
            "{how}: {}",
            warnings[0]
        );
        // The honoured keys are loaded as properties.
        assert!(
            err.contains("Loading configuration property: parallelism.default, 1")
                && err.contains(
                    "Loading configuration property: jobmanager.execution.failover-strategy, region"
                ),
            "{how}: {err}"
        );
    }
}

#[test]
fn a_flink_value_floe_cannot_honour_fails_the_run_with_the_reason() {
    let dir = setup("state:\n  backend:\n    type: rocksdb\n");
    for (how, o) in runs(dir.path()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{how}: {err}");
        assert!(
            err.contains(
                "unsupported value 'rocksdb' for configuration key 'state.backend.type': Floe has no RocksDB state backend; use hashmap"
            ),
            "{how}: {err}"
        );
    }
    let dir = setup("execution.checkpointing.incremental: true\n");
    let (_, o) = runs(dir.path()).remove(0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Floe takes full checkpoints"), "{err}");
}
