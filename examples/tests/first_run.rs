//! What a new user meets first: `--help` of `floe` and of a job binary, which configuration
//! file was read, a detached job without a cluster that the other commands can reach, and
//! a `floe checkpoints` table whose columns line up.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn floe_help_names_the_job_directory_form_of_s_and_the_default_of_m() {
    let cwd = tempfile::tempdir().unwrap();
    let (code, out, _) = floe_in(cwd.path(), &["run", "--help"]);
    assert_eq!(code, 0);
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(
            "or a job's checkpoint directory <dir>/<job-id> (its latest complete checkpoint)"
        ),
        "{out}"
    );
    assert!(flat.contains("else 127.0.0.1:8081]"), "{out}");
    for cmd in ["list", "savepoint", "cancel", "checkpoints", "stop"] {
        let (code, out, _) = floe_in(cwd.path(), &[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("else 127.0.0.1:8081]"), "{cmd}: {out}");
    }
    let (code, out, _) = floe_in(cwd.path(), &["savepoint", "inspect", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("<dir>/<job-id>"), "{out}");
}

#[test]
fn a_job_binary_prints_floe_options_and_its_own_usage_for_help() {
    for flag in ["--help", "-h"] {
        let o = Command::new(bin("state_word_count"))
            .args(["--port", "1", flag])
            .env_remove("FLOE_CONF_DIR")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{flag}: {out}");
        assert!(
            out.starts_with("Usage: state_word_count [Floe options] [job arguments]"),
            "{out}"
        );
        for want in [
            "-s, --fromSavepoint PATH",
            "or a job's checkpoint directory <dir>/<job-id>",
            "-p, --parallelism N",
            "-n, --allowNonRestoredState",
            "-D key=value",
            "Job arguments:\n  [--host HOST] [--port PORT] [--checkpoint-dir DIR]",
        ] {
            assert!(out.contains(want), "{want}: {out}");
        }
        // Nothing ran: no job was submitted.
        assert!(!String::from_utf8_lossy(&o.stderr).contains("Submitting job"));
    }
    // Through `floe run`: what follows the job binary is the job's, --help included.
    let o = Command::new(floe_cli())
        .arg("run")
        .arg(bin("state_word_count"))
        .arg("--help")
        .env_remove("FLOE_CONF_DIR")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("Usage: state_word_count [Floe options] [job arguments]"),
        "{out}"
    );
    // A job without a usage of its own prints Floe's options.
    let o = Command::new(bin("file_word_count"))
        .arg("--help")
        .env_remove("FLOE_CONF_DIR")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("-s, --fromSavepoint PATH"), "{out}");
    assert!(!out.contains("Job arguments:"), "{out}");
}

#[test]
fn the_configuration_file_read_is_logged_with_its_properties() {
    let cwd = tempfile::tempdir().unwrap();
    let conf = cwd.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("floe.yaml"),
        "parallelism.default: 2\nrest.auth.token: s3cr3t-value\n",
    )
    .unwrap();
    // conf/floe.yaml of the working directory, without FLOE_CONF_DIR.
    let o = Command::new(bin("state_word_count"))
        .args(["-p", "zero"]) // ends right after the configuration is read
        .current_dir(cwd.path())
        .env("FLOE_LOG", "info")
        .env_remove("FLOE_CONF_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Loading configuration file conf/floe.yaml"),
        "{err}"
    );
    assert!(
        err.contains("Loading configuration property: parallelism.default, 2"),
        "{err}"
    );
    assert!(
        err.contains("Loading configuration property: rest.auth.token, ******"),
        "{err}"
    );
    assert!(
        !err.contains("s3cr3t-value"),
        "secrets stay out of logs: {err}"
    );
    // FLOE_CONF_DIR names the file.
    let o = Command::new(bin("state_word_count"))
        .args(["-p", "zero"])
        .env("FLOE_LOG", "info")
        .env("FLOE_CONF_DIR", &conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "Loading configuration file {}",
            conf.join("floe.yaml").display()
        )),
        "{err}"
    );
}

#[test]
fn detached_run_without_a_cluster_says_how_to_reach_the_job() {
    let server = LineServer::start();
    let port = server.port.to_string();
    let cluster_dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let o = floe_command()
        .args(["run", "-m", "127.0.0.1:1", "-d"])
        .arg(bin("count_window_average"))
        .args(["--port", &port, "--checkpoint-dir"])
        .arg(ck.path())
        .env("FLOE_CLUSTER_DIR", cluster_dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Job has been submitted with JobID "))
        .expect(&out)
        .to_string();
    let addr = out
        .split("with its REST endpoint at ")
        .nth(1)
        .and_then(|r| r.split(": ").next())
        .unwrap_or_else(|| panic!("no REST address in: {out}"))
        .to_string();
    assert!(
        out.contains(&format!("floe cancel -m {addr} {id}")),
        "{out}"
    );
    // The other commands reach it there.
    let cwd = tempfile::tempdir().unwrap();
    let (code, list, err) = floe_in(cwd.path(), &["list", "-m", &addr]);
    assert_eq!(code, 0, "{err}");
    assert!(
        list.lines()
            .any(|l| l.contains(&format!(" : {id} : s5 (RUNNING)"))),
        "{list}"
    );
    server.wait_connections(1, T);
    let (code, out, err) = floe_in(cwd.path(), &["cancel", "-m", &addr, &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Cancelled job {id}.")), "{out}");
    // Cancelled: its endpoint goes away with it.
    let deadline = Instant::now() + T;
    while floe_in(cwd.path(), &["list", "-m", &addr]).0 == 0 {
        assert!(Instant::now() < deadline, "the job still answers");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start column of `word` in `line` (by chars), which must be there.
fn col(line: &str, word: &str) -> usize {
    let i = line
        .find(word)
        .unwrap_or_else(|| panic!("no '{word}' in '{line}'"));
    line[..i].chars().count()
}

#[test]
fn floe_checkpoints_columns_line_up() {
    let server = LineServer::start();
    let port = server.port.to_string();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let job = Job::start(
        "count_window_average",
        &[
            "-D",
            "rest.port=0",
            "--port",
            &port,
            "--checkpoint-dir",
            &ckp,
        ],
    );
    let job_id = job.job_id();
    let i = job.wait_stderr("Rest endpoint listening at ", 0, T);
    let addr = job.stderr()[i].rsplit(' ').next().unwrap().to_string();
    server.wait_connections(1, T);
    server.send("1 3");
    // Ids of one and two digits, both kinds (the history keeps the last 10).
    while job.wait_next_checkpoint(T) < 5 {}
    let cwd = tempfile::tempdir().unwrap();
    let (code, _, err) = floe_in(
        cwd.path(),
        &[
            "savepoint",
            "-m",
            &addr,
            &job_id,
            sp.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    while job.wait_next_checkpoint(T) < 10 {}
    let (code, out, err) = floe_in(cwd.path(), &["checkpoints", "-m", &addr, &job_id]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().skip(1).collect();
    let header = lines[0];
    let rows = &lines[1..];
    assert!(rows.len() >= 2, "{out}");
    assert!(rows.iter().any(|r| r.starts_with("10 ")), "{out}");
    assert!(rows.iter().any(|r| r.contains(" savepoint ")), "{out}");
    let end = |line: &str, word: &str| col(line, word) + word.chars().count();
    for r in rows {
        let fields: Vec<&str> = r.split_whitespace().collect();
        // id, type, status, date, time, duration, bytes, path (none while in progress)
        if fields[2] != "COMPLETED" {
            continue;
        }
        assert_eq!(fields.len(), 8, "{r}");
        assert_eq!(col(r, fields[1]), col(header, "type"), "{out}");
        assert_eq!(col(r, fields[2]), col(header, "status"), "{out}");
        assert_eq!(col(r, fields[3]), col(header, "trigger time"), "{out}");
        assert_eq!(
            end(r, &format!(" {} ", fields[5])) - 1,
            end(header, "duration"),
            "{out}"
        );
        assert_eq!(
            end(r, &format!(" {} ", fields[6])) - 1,
            end(header, "bytes"),
            "{out}"
        );
        assert_eq!(col(r, fields[7]), col(header, "path"), "{out}");
    }
}

/// The README's seed walkthrough: three `error`s on one line are one failure (the rest of
/// the line is gone with the failed attempt), and the job runs on after one restart.
#[test]
fn three_errors_on_one_line_are_one_failure() {
    let server = LineServer::start();
    let port = server.port.to_string();
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let job = Job::start_via_floe_run(
        "state_word_count",
        &["--port", &port, "--checkpoint-dir", &ckp],
    );
    server.wait_connections(1, T);
    server.send("spark");
    job.expect_stdout(&["(spark,1)"], T);
    job.wait_next_checkpoint(T);
    server.send("error error error");
    job.wait_stderr("Restoring job", 0, T);
    server.wait_connections(2, T);
    server.send("spark");
    job.expect_stdout(&["(spark,1)", "(spark,2)"], T);
    let log = job.stderr().join("\n");
    assert_eq!(
        log.matches("switched from state RUNNING to RESTARTING")
            .count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("switched from state FAILING to FAILED"),
        "{log}"
    );
}
