//! The seed 003 savepoint story through the `floe` CLI, against a real job process serving
//! its REST API: list, savepoint (refused without a directory, then taken), cancel,
//! `floe run -s`, and dispose.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

mod common;
use common::{cli, floe, free_port, job_binary};

struct Job {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
}

impl Job {
    fn start(args: &[&str]) -> Job {
        let mut child = Command::new(floe())
            .arg("run")
            .args(args)
            .env_remove("FLOE_CONF_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    eprintln!("[job] {l}");
                    let _ = tx.send(l);
                }
            });
            rx
        };
        let out = pipe(Box::new(child.stdout.take().unwrap()));
        let err = pipe(Box::new(child.stderr.take().unwrap()));
        Job { child, out, err }
    }

    fn wait_line(rx: &Receiver<String>, pat: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line containing '{pat}'"));
            if l.contains(pat) {
                return l;
            }
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path `floe savepoint` or `floe stop` printed in Flink's words.
fn savepoint_path(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Savepoint completed. Path: file:"))
        .unwrap_or_else(|| panic!("no savepoint path in: {out}"))
        .to_string()
}

/// The id of the one RUNNING job `floe list` shows at `addr`.
fn running_job_id(addr: &str) -> String {
    let (_, out, _) = cli(&["list", "-m", addr]);
    out.lines()
        .find(|l| l.ends_with("(RUNNING)"))
        .and_then(|l| l.split(" : ").nth(1))
        .unwrap_or_else(|| panic!("no RUNNING job listed at {addr}: {out}"))
        .to_string()
}

#[test]
fn seed_003_savepoint_story_through_the_cli() {
    let bin = job_binary();
    let bin = bin.to_str().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap();
    let args = [
        "-D",
        "rest.port=0",
        bin,
        "--port",
        &port,
        "--checkpoint-dir",
        ckp,
    ];
    let job = Job::start(&args);
    let (mut conn, _) = listener.accept().unwrap();
    let rest = Job::wait_line(&job.err, "Rest endpoint listening at ");
    let addr = rest.rsplit(' ').next().unwrap().to_string();

    let (code, out, _) = cli(&["list", "-m", &addr]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.ends_with(": s5 (RUNNING)"))
        .expect(&out);
    let job_id = line.split(" : ").nth(1).unwrap().to_string();
    assert_eq!(job_id.len(), 32);

    for l in ["1 3", "1 5", "2 4"] {
        writeln!(conn, "{l}").unwrap();
    }
    assert_eq!(Job::wait_line(&job.out, "("), "(1,4)");

    // No directory given and none configured: refused, the job untouched.
    let (code, _, err) = cli(&["savepoint", "-m", &addr, &job_id]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "Triggering a savepoint for the job {job_id} failed"
        )),
        "{err}"
    );
    assert!(
        err.contains("execution.checkpointing.savepoint-dir") && err.contains("target-directory"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let (code, out, err) = cli(&[
        "savepoint",
        "-m",
        &addr,
        &job_id,
        sp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let path = savepoint_path(&out);
    assert!(PathBuf::from(&path).join("_metadata").is_file());

    // The savepoint can be read without the job's types.
    let (code, out, err) = cli(&["savepoint", "inspect", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kind:            savepoint")
            && out.contains(&format!("job id:          {job_id}")),
        "{out}"
    );
    assert!(
        out.contains("uid 'count-window-average' (Flat Map): keyed, parallelism 1"),
        "{out}"
    );
    assert!(
        out.contains("state 'average': 1 entries"),
        "key 2 holds (1, 4); key 1 was cleared: {out}"
    );
    let (code, out, _) = cli(&[
        "savepoint",
        "inspect",
        &path,
        "--dump",
        "count-window-average/average",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(
        (lines[0]["key"].clone(), lines[0]["value"].clone()),
        (serde_json::json!(2), serde_json::json!([1, 4]))
    );
    let (code, _, err) = cli(&["savepoint", "inspect", &path, "--dump", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no operator with uid 'nope'"), "{err}");

    // The same savepoint in an S3 bucket (s3s-fs serves its directory) reads the same, and
    // is disposed there.
    let s3 = floe_testkit::s3::S3Server::start().unwrap();
    let name = PathBuf::from(&path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let in_bucket = s3.object_path(&format!("sp/{name}"));
    std::fs::create_dir_all(&in_bucket).unwrap();
    for f in std::fs::read_dir(&path).unwrap().flatten() {
        std::fs::copy(f.path(), in_bucket.join(f.file_name())).unwrap();
    }
    let url = s3.url(&format!("sp/{name}"));
    let s3_args = s3.floe_args();
    let with_s3 = |cmd: &[&str]| {
        let mut a: Vec<&str> = cmd.to_vec();
        a.extend(s3_args.iter().map(String::as_str));
        cli(&a)
    };
    let (code, local_out, _) = cli(&["savepoint", "inspect", &path]);
    assert_eq!(code, 0);
    let (code, s3_out, err) = with_s3(&["savepoint", "inspect", &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s3_out, local_out.replace(path.as_str(), &url));
    let (code, _, err) = with_s3(&["savepoint", "-d", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(!in_bucket.join("_metadata").exists(), "disposed on S3");
    let (code, _, err) = with_s3(&["savepoint", "inspect", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&url) && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    drop(s3);

    let (code, out, _) = cli(&["checkpoints", "-m", &addr, &job_id]);
    assert_eq!(code, 0);
    assert!(out.contains("savepoint") && out.contains(&path), "{out}");

    let (code, out, _) = cli(&["cancel", "-m", &addr, &job_id]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("Cancelled job {job_id}.")));
    drop(job);
    drop(conn);

    // Resume from the savepoint: key 2 still has (1, 4).
    let job2 = Job::start(&["-s", &path, bin, "--port", &port, "--checkpoint-dir", ckp]);
    let (mut conn, _) = listener.accept().unwrap();
    writeln!(conn, "2 6").unwrap();
    assert_eq!(Job::wait_line(&job2.out, "("), "(2,5)");
    drop(job2);

    // stop --savepoint-path: a savepoint, then the job ends FINISHED (exit 0).
    let default_dir = format!(
        "execution.checkpointing.savepoint-dir={}",
        sp.path().display()
    );
    let mut job3 = Job::start(&[
        "-D",
        "rest.port=0",
        "-D",
        &default_dir,
        bin,
        "--port",
        &port,
        "--checkpoint-dir",
        ckp,
    ]);
    let (mut conn3, _) = listener.accept().unwrap();
    let rest3 = Job::wait_line(&job3.err, "Rest endpoint listening at ");
    let addr3 = rest3.rsplit(' ').next().unwrap().to_string();
    writeln!(conn3, "5 1").unwrap();
    let id3 = running_job_id(&addr3);
    // With a configured default directory, no target is needed.
    let (code, out, err) = cli(&["savepoint", "-m", &addr3, &id3]);
    assert_eq!(code, 0, "{err}");
    let into_default = savepoint_path(&out);
    assert!(
        PathBuf::from(&into_default).starts_with(sp.path()),
        "{into_default}"
    );
    let (code, out, err) = cli(&[
        "stop",
        "-m",
        &addr3,
        "--savepoint-path",
        sp.path().to_str().unwrap(),
        &id3,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("Suspending job \"{id3}\" with a savepoint.")),
        "{out}"
    );
    let stopped = savepoint_path(&out);
    let st = job3.child.wait().unwrap();
    assert!(st.success(), "stop ends the job FINISHED");
    Job::wait_line(&job3.err, "switched from state RUNNING to FINISHED");
    drop(conn3);
    // The stopped job's savepoint restores: key 5 has (1, 1).
    let job4 = Job::start(&[
        "-s",
        &stopped,
        bin,
        "--port",
        &port,
        "--checkpoint-dir",
        ckp,
    ]);
    let (mut conn4, _) = listener.accept().unwrap();
    writeln!(conn4, "5 3").unwrap();
    assert_eq!(Job::wait_line(&job4.out, "("), "(5,2)");
    drop(job4);

    let (code, out, _) = cli(&["savepoint", "--dispose", &path]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("Savepoint '{path}' disposed.")));
    assert!(!PathBuf::from(&path).exists());
    let (code, _, err) = cli(&["list", "-m", "127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot reach the job manager at http://127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn seed_003_savepoint_story_against_a_session_cluster() {
    let bin = job_binary();
    let bin = bin.to_str().unwrap().to_string();
    let port = free_port();
    let m = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let (code, out, err) = cli(&[
        "cluster",
        "start",
        "--dir",
        dir.path().to_str().unwrap(),
        // Any free RPC port (tests run side by side), slots for -p 2 jobs.
        "-D",
        "jobmanager.rpc.port=0",
        "-D",
        "taskmanager.numberOfTaskSlots=4",
        "-D",
        &format!("rest.port={port}"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new(floe())
                .args(["cluster", "stop", "-m", &self.0])
                .output();
        }
    }
    let _stop = Stop(m.clone());
    let (code, out, _) = cli(&["cluster", "status", "-m", &m]);
    assert_eq!(code, 0);
    assert!(out.contains("0 running"), "{out}");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port().to_string();
    let (code, out, err) = cli(&[
        "run",
        "-m",
        &m,
        "-d",
        &bin,
        "--port",
        &lport,
        "--checkpoint-dir",
        &ckp,
    ]);
    assert_eq!(code, 0, "{err}");
    let job_id = out
        .trim()
        .strip_prefix("Job has been submitted with JobID ")
        .expect(&out)
        .to_string();
    let (mut conn, _) = listener.accept().unwrap();
    for l in ["1 3", "1 5", "2 4"] {
        writeln!(conn, "{l}").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = cli(&["logs", "-m", &m, &job_id]);
        if out.contains("(1,4)") {
            break;
        }
        assert!(Instant::now() < deadline, "no output in floe logs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, out, _) = cli(&["list", "-m", &m]);
    assert!(out.contains(&format!("{job_id} : s5 (RUNNING)")), "{out}");

    let (code, _, err) = cli(&["savepoint", "-m", &m, &job_id]);
    assert_eq!(code, 1);
    assert!(
        err.contains("execution.checkpointing.savepoint-dir") && err.contains("To fix it"),
        "{err}"
    );
    let (code, out, err) = cli(&["savepoint", "-m", &m, &job_id, sp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let path = savepoint_path(&out);
    let (code, _, _) = cli(&["cancel", "-m", &m, &job_id]);
    assert_eq!(code, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = cli(&["list", "-a", "-m", &m]);
        if out.contains(&format!("{job_id} : s5 (CANCELED)")) {
            break;
        }
        assert!(Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(conn);

    // Attached run from the savepoint: output forwarded, exit code from the final state.
    let default_dir = format!(
        "execution.checkpointing.savepoint-dir={}",
        sp.path().display()
    );
    let mut attached = Command::new(floe())
        .args([
            "run",
            "-m",
            &m,
            "-D",
            &default_dir,
            "-s",
            &path,
            &bin,
            "--port",
            &lport,
            "--checkpoint-dir",
            &ckp,
        ])
        .env_remove("FLOE_CONF_DIR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    let stdout = attached.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let id2 = first
        .strip_prefix("Job has been submitted with JobID ")
        .expect(&first)
        .to_string();
    assert_ne!(id2, job_id);
    let (mut conn, _) = listener.accept().unwrap();
    writeln!(conn, "2 6").unwrap();
    assert_eq!(
        Job::wait_line(&rx, "("),
        "(2,5)",
        "key 2 resumed from the savepoint"
    );
    // This job has a configured default savepoint directory: no target needed.
    let (code, out, err) = cli(&["savepoint", "-m", &m, &id2]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("Path: file:{}", sp.path().display())),
        "{out}"
    );
    drop(conn); // the socket source ends: the job FINISHES
    assert_eq!(
        Job::wait_line(&rx, "has "),
        format!("Job with JobID {id2} has finished.")
    );
    assert!(attached.wait().unwrap().success());

    let (code, out, _) = cli(&["cluster", "stop", "-m", &m]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = cli(&["cluster", "status", "-m", &m]);
    assert_eq!(code, 1);
}

#[test]
fn detached_per_job_run_returns_once_the_job_runs() {
    let bin = job_binary();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let cluster_dir = tempfile::tempdir().unwrap();
    // No cluster at -m: per-job mode.
    let o = Command::new(floe())
        .args([
            "run",
            "-m",
            "127.0.0.1:1",
            "-d",
            bin.to_str().unwrap(),
            "--port",
            &port,
        ])
        .env_remove("FLOE_CONF_DIR")
        .env("FLOE_CLUSTER_DIR", cluster_dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.starts_with("Job has been submitted with JobID "),
        "{out}"
    );
    let out_file = out
        .split("Its output goes to ")
        .nth(1)
        .unwrap()
        .split(" and its log")
        .next()
        .unwrap()
        .to_string();
    // The detached job runs on: it connects, counts, and ends when its input ends.
    let (mut conn, _) = listener.accept().unwrap();
    writeln!(conn, "7 2").unwrap();
    writeln!(conn, "7 4").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&out_file)
        .unwrap_or_default()
        .contains("(7,3)")
    {
        assert!(Instant::now() < deadline, "no output in {out_file}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(conn);
}

#[test]
fn seed_003_savepoint_at_parallelism_2_restores_at_1_and_3() {
    let bin = job_binary();
    let bin = bin.to_str().unwrap().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let job = Job::start(&[
        "-p",
        "2",
        "-D",
        "rest.port=0",
        &bin,
        "--port",
        &port,
        "--checkpoint-dir",
        &ckp,
    ]);
    let (mut conn, _) = listener.accept().unwrap();
    let rest = Job::wait_line(&job.err, "Rest endpoint listening at ");
    let addr = rest.rsplit(' ').next().unwrap().to_string();
    // First value of keys 1..=12 (count 1 each: nothing printed yet), then a marker key.
    for k in 1..=12u64 {
        writeln!(conn, "{k} {}", k * 10).unwrap();
    }
    writeln!(conn, "99 1").unwrap();
    writeln!(conn, "99 3").unwrap();
    let marker = Job::wait_line(&job.out, "(99,2)");
    assert!(
        marker.starts_with("1> ") || marker.starts_with("2> "),
        "parallelism 2 prints subtask prefixes: {marker}"
    );
    let id = running_job_id(&addr);
    let (code, out, err) = cli(&["savepoint", "-m", &addr, &id, sp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let path = savepoint_path(&out);
    let (code, _, _) = cli(&["cancel", "-m", &addr, &id]);
    assert_eq!(code, 0);
    drop(job);
    drop(conn);

    for p in ["1", "3"] {
        let job = Job::start(&[
            "-s",
            &path,
            "-p",
            p,
            &bin,
            "--port",
            &port,
            "--checkpoint-dir",
            &ckp,
        ]);
        let (mut conn, _) = listener.accept().unwrap();
        for k in 1..=12u64 {
            writeln!(conn, "{k} {}", k * 10 + 4).unwrap();
        }
        let mut got: Vec<String> = (0..12)
            .map(|_| {
                let l = Job::wait_line(&job.out, "(");
                l.split_once("> ").map(|(_, r)| r.to_string()).unwrap_or(l)
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = (1..=12u64)
            .map(|k| format!("({k},{})", (k * 10 + k * 10 + 4) / 2))
            .collect();
        want.sort();
        assert_eq!(
            got, want,
            "restored at parallelism {p}: every key's first value came from the savepoint"
        );
        drop(conn);
    }
}

fn example(name: &str) -> String {
    let _ = job_binary(); // builds floe-examples' binaries once
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "-p", "floe-examples", "--bin", name])
        .status()
        .unwrap();
    assert!(st.success());
    floe().with_file_name(name).to_str().unwrap().to_string()
}

#[test]
fn upgrade_with_a_removed_operator_and_an_evolved_state_type() {
    let (v1, v2) = (example("upgrade_v1"), example("upgrade_v2"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let sp = tempfile::tempdir().unwrap();
    let job = Job::start(&["-D", "rest.port=0", &v1, "--port", &port]);
    let (mut conn, _) = listener.accept().unwrap();
    let rest = Job::wait_line(&job.err, "Rest endpoint listening at ");
    let addr = rest.rsplit(' ').next().unwrap().to_string();
    writeln!(conn, "1 10").unwrap();
    assert_eq!(Job::wait_line(&job.out, "("), "(1,10,1)");
    let id = running_job_id(&addr);
    let (code, out, err) = cli(&["savepoint", "-m", &addr, &id, sp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let path = savepoint_path(&out);
    cli(&["cancel", "-m", &addr, &id]);
    drop(job);
    drop(conn);

    // check predicts both outcomes.
    let (code, out, _) = cli(&["savepoint", "check", &path, &v2, "--port", &port]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("operator 'counter' (Keyed Aggregation, states 'aggregate'): not in this job"),
        "{out}"
    );
    assert!(
        out.contains("operator 'avg' (Flat Map): matched")
            && out.contains("state 'acc': compatible, 1 entries"),
        "{out}"
    );
    assert!(
        out.contains("operator 'max' (Keyed Reduce): new in this job, starts empty"),
        "{out}"
    );
    let (code, out, _) = cli(&["savepoint", "check", "-n", &path, &v2, "--port", &port]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Result: the snapshot restores into this job."),
        "{out}"
    );

    // Without -n the restore fails with the exact message, before anything runs.
    let (code, _, err) = cli(&["run", "-s", &path, &v2, "--port", &port]);
    assert_eq!(code, 1);
    let expected = format!(
        "Failed to rollback to checkpoint/savepoint {path}. Cannot map checkpoint/savepoint state for operator 'counter' (Keyed Aggregation, states 'aggregate') to the new program, because the operator is not available in the new program. If you want to allow to skip this, you can set the --allowNonRestoredState option on the CLI."
    );
    assert!(err.contains(&expected), "{err}");

    // With -n it restores: key 1's average continues from (count 1, sum 10), max defaults to 0.
    let job2 = Job::start(&["-n", "-s", &path, &v2, "--port", &port]);
    let (mut conn, _) = listener.accept().unwrap();
    writeln!(conn, "1 20").unwrap();
    assert_eq!(Job::wait_line(&job2.out, "("), "(1,15)");
    drop(conn);
}

/// A session cluster runs binaries on request: off loopback it refuses to start without
/// `rest.auth.token`, and with one every request must carry it — the CLI sends it from
/// `floe.yaml`, a bare HTTP request is refused.
#[test]
fn a_cluster_off_loopback_needs_and_checks_a_token() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("floe.yaml"), "rest.auth.token: s3cret\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let m = format!("127.0.0.1:{port}");
    let with_conf = |args: &[&str]| {
        let o = Command::new(floe())
            .args(args)
            .env("FLOE_CONF_DIR", conf.path())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let start = [
        "cluster",
        "start",
        "--dir",
        dir.path().to_str().unwrap(),
        // Any free RPC port (tests run side by side), slots for -p 2 jobs.
        "-D",
        "jobmanager.rpc.port=0",
        "-D",
        "taskmanager.numberOfTaskSlots=4",
        "-D",
        &format!("rest.port={port}"),
        "-D",
        "rest.address=0.0.0.0",
    ];
    let (code, _, err) = cli(&start);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim(),
        format!("error: refusing to serve REST on 0.0.0.0:{port}: it is not a loopback address and rest.auth.token is not set")
    );

    let (code, out) = with_conf(&start);
    assert_eq!(code, 0, "{out}");
    struct Stop<'a>(&'a dyn Fn(&[&str]) -> (i32, String), String);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["cluster", "stop", "-m", &self.1]);
        }
    }
    let _stop = Stop(&with_conf, m.clone());
    let raw = |auth: &str| {
        use std::io::Read;
        let mut c = std::net::TcpStream::connect(&m).unwrap();
        write!(
            c,
            "GET /jobs/overview HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).unwrap();
        resp.lines().next().unwrap_or("").to_string()
    };
    assert_eq!(raw(""), "HTTP/1.1 401 Unauthorized");
    assert_eq!(
        raw("Authorization: Bearer guess\r\n"),
        "HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(raw("Authorization: Bearer s3cret\r\n"), "HTTP/1.1 200 OK");
    let (code, out) = with_conf(&["list", "-m", &m]);
    assert_eq!(code, 0, "{out}");
    // Without the token the CLI says why, and `run` does not fall back to a job of its own.
    let (code, _, err) = cli(&["list", "-m", &m]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: Unauthorized: this endpoint requires 'Authorization: Bearer <rest.auth.token>'"
    );
    let (code, _, err) = cli(&["run", "-m", &m, "-d", "/bin/true"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Unauthorized"), "{err}");
    let (code, out) = with_conf(&["cluster", "stop", "-m", &m]);
    assert_eq!(code, 0, "{out}");
}
