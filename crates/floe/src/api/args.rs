//! A job binary's command line: Floe's options (what `floe run` passes on) taken out of the
//! arguments, the rest left to the job ([`JobParams`]).
//!
//! | option | meaning |
//! |---|---|
//! | `-s`, `--fromSavepoint PATH` | restore from a `chk-<n>` or savepoint directory, its `_metadata`, or a job's checkpoint directory `<dir>/<job-id>` |
//! | `-p`, `--parallelism N` | default parallelism |
//! | `-n`, `--allowNonRestoredState` | skip snapshot state that maps to no operator |
//! | `-D key=value` | a configuration setting (Flink's key names) |
//! | `-h`, `--help` | print the options and exit |

use super::params::JobParams;
use crate::config::{keys, Configuration};
use crate::Result;
use std::path::PathBuf;

/// The one-line summary of Floe's options, in errors about them.
const USAGE: &str = "job options: [-s|--fromSavepoint PATH] [-p|--parallelism N] [-n|--allowNonRestoredState] [-D key=value]... [job arguments]";

/// What `--help` prints of Floe's options: the table of the README's "Running a job binary".
const OPTIONS_HELP: &str = "\
Floe options (the options `floe run` passes on):
  -s, --fromSavepoint PATH     start from a chk-<n> or savepoint directory, its _metadata file,
                               or a job's checkpoint directory <dir>/<job-id> (its latest
                               complete checkpoint); PATH may be a plain path, file:/path or
                               file:///path. The job gets a new id and continues checkpoint
                               numbering at n+1
  -p, --parallelism N          default parallelism (worker threads)
  -n, --allowNonRestoredState  skip snapshot state whose operator uid is not in the job
  -D key=value                 a configuration setting with Flink's key names,
                               e.g. -D execution.checkpointing.interval=1s
  -h, --help                   print this help and exit

Settings are also read from $FLOE_CONF_DIR/floe.yaml (else conf/floe.yaml in the working
directory); -D overrides the file and settings made in job code override both.";

/// Floe's options as parsed from a command line.
#[derive(Debug, Default)]
pub(crate) struct FloeArgs {
    /// `-s`: the snapshot to start from.
    pub restore: Option<PathBuf>,
    /// `-n`: skip snapshot state without an operator.
    pub allow_non_restored: bool,
    /// `-p` and `-D` settings, in the order given (a later one wins).
    pub dynamic: Configuration,
    /// Everything that is not Floe's: the job's own arguments.
    pub job: JobParams,
}

/// Takes Floe's options out of `args` (without the program name).
pub(crate) fn parse(args: &[String]) -> Result<FloeArgs> {
    let mut out = FloeArgs::default();
    let mut rest = Vec::new();
    let value = |i: usize, flag: &str| -> Result<String> {
        args.get(i + 1)
            .cloned()
            .ok_or_else(|| crate::anyhow!("option {flag} needs a value ({USAGE})"))
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-s" | "--fromSavepoint" => {
                out.restore = Some(PathBuf::from(value(i, a)?));
                i += 1;
            }
            "-p" | "--parallelism" => {
                let v = value(i, a)?;
                let p: u32 = v.parse().ok().filter(|p| *p >= 1).ok_or_else(|| {
                    crate::anyhow!(
                        "invalid parallelism '{v}' for option {a}: expected a positive integer"
                    )
                })?;
                out.dynamic.put(keys::PARALLELISM_DEFAULT, &p)?;
                i += 1;
            }
            "-n" | "--allowNonRestoredState" => out.allow_non_restored = true,
            "-D" => {
                let v = value(i, a)?;
                out.dynamic.set_dynamic(&v)?;
                i += 1;
            }
            _ if a.starts_with("-D") && a.len() > 2 => out.dynamic.set_dynamic(&a[2..])?,
            _ => rest.push(args[i].clone()),
        }
        i += 1;
    }
    out.job = JobParams::parse(rest)?;
    Ok(out)
}

/// True when `args` ask for help: `--help` anywhere among Floe's options, or `-h` that is
/// not followed by a value (a job may take `-h HOST` as its own argument). Values of
/// Floe's own options (`-s PATH`, `-p N`, `-D k=v`) are skipped, so `-D --help` is a value.
pub(crate) fn wants_help(args: &[String]) -> bool {
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--help" => return true,
            "-h" if args.get(i + 1).is_none_or(|n| n.starts_with('-')) => return true,
            "-s" | "--fromSavepoint" | "-p" | "--parallelism" | "-D" => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The text `--help` prints: Floe's options, then the job's own `usage` when it has one.
pub(crate) fn help_text(program: Option<&str>, usage: &str) -> String {
    let program = program
        .map(|p| {
            std::path::Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.to_string())
        })
        .unwrap_or_else(|| "job".into());
    let job = if usage.is_empty() {
        String::new()
    } else {
        let lines: Vec<String> = usage.lines().map(|l| format!("  {l}")).collect();
        format!("\n\nJob arguments:\n{}", lines.join("\n"))
    };
    format!("Usage: {program} [Floe options] [job arguments]\n\n{OPTIONS_HELP}{job}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn help_is_asked_for_by_help_flags_not_by_option_values() {
        let h = |a: &[&str]| wants_help(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(h(&["--help"]));
        assert!(h(&["-h"]));
        assert!(h(&["--port", "1", "--help"]));
        assert!(h(&["-h", "--port", "1"]));
        // A job's own `-h HOST`, and option values that look like flags.
        assert!(!h(&["-h", "example.org", "--port", "1"]));
        assert!(!h(&["-D", "--help"]));
        assert!(!h(&["-s", "-h"]));
        assert!(!h(&[]));
    }

    #[test]
    fn dynamic_settings_keep_their_order_and_the_rest_is_the_jobs() {
        let a = parse(&strings(&[
            "-p",
            "3",
            "-D",
            "parallelism.default=5",
            "--x",
            "1",
        ]))
        .unwrap();
        assert_eq!(a.dynamic.get(keys::PARALLELISM_DEFAULT).unwrap(), Some(5));
        assert_eq!(a.job.get("x"), Some("1"));
        assert!(a.restore.is_none() && !a.allow_non_restored);
    }

    #[test]
    fn help_names_the_program_and_the_jobs_arguments() {
        let t = help_text(Some("/bin/dir/my_job"), "--in DIR\n--out DIR");
        assert!(t.starts_with("Usage: my_job [Floe options]"), "{t}");
        assert!(
            t.ends_with("Job arguments:\n  --in DIR\n  --out DIR"),
            "{t}"
        );
        assert!(help_text(None, "").starts_with("Usage: job "));
    }
}
