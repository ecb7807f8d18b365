//! Seed 003 end to end: keyed averages from a ValueState with a default, across a restart
//! caused by a bad record, and across a restart of the job from its retained checkpoint.

mod common;
use common::*;

#[test]
fn averages_continue_across_restarts() {
    let ck = tempfile::tempdir().unwrap();
    let ckp = ck.path().to_str().unwrap().to_string();
    let server = LineServer::start();
    let port = server.port.to_string();
    let args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--checkpoint-dir",
        &ckp,
    ];
    let mut job = Job::start("count_window_average", &args);
    let job_id = job.job_id();
    server.wait_connections(1, T);
    server.send("1 3");
    server.send("1 5");
    server.send("2 4");
    job.expect_stdout(&["(1,4)"], T);
    job.wait_next_checkpoint(T);
    // A malformed record fails the task with a message naming it; the default restart
    // strategy (exponential delay) restores the last checkpoint, where key 2 has (1, 4).
    let mark = job.stderr_len();
    server.send("x 7");
    job.wait_stderr(
        "invalid record 'x 7': first field 'x' is not an unsigned integer",
        mark,
        T,
    );
    job.wait_stderr("Restoring job", mark, T);
    server.wait_connections(2, T);
    server.send("2 6");
    server.send("1 10");
    job.expect_stdout(&["(1,4)", "(2,5)"], T);
    job.wait_next_checkpoint(T);

    // Cancel; RETAIN_ON_CANCELLATION keeps the checkpoint, which holds key 1 = (1, 10).
    assert_eq!(job.terminate().code(), Some(2), "CANCELED exits 2");
    let chks = checkpoints(ck.path(), &job_id);
    assert_eq!(chks.len(), 1);
    let chk = chks[0].1.join("_metadata");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&chk).unwrap()).unwrap();
    assert_eq!(meta["kind"], "checkpoint");
    assert!(meta["operators"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["uid"] == "count-window-average"));

    // Restart from the _metadata file itself.
    let chk_s = chk.to_str().unwrap().to_string();
    let mut args2 = vec!["-s", &chk_s];
    args2.extend_from_slice(&args);
    let job2 = Job::start("count_window_average", &args2);
    server.wait_connections(3, T);
    server.send("1 20");
    server.send("3 1");
    server.send("3 2");
    job2.expect_stdout(&["(1,15)", "(3,1)"], T);
}

#[test]
fn print_prefixes_subtask_with_parallelism_2() {
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut job = Job::start("count_window_average", &["-p", "2", "--port", &port]);
    server.wait_connections(1, T);
    for l in ["1 2", "1 4", "2 2", "2 8", "3 1", "3 3", "4 0", "4 10"] {
        server.send(l);
    }
    let deadline = std::time::Instant::now() + T;
    while job.stdout().len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut out = job.stdout();
    out.sort();
    // Each key is printed by the subtask that owns its key group, as "N> (key,avg)".
    let mut bare: Vec<String> = out
        .iter()
        .map(|l| l.split_once("> ").unwrap().1.to_string())
        .collect();
    bare.sort();
    assert_eq!(bare, vec!["(1,3)", "(2,5)", "(3,2)", "(4,5)"], "{out:?}");
    assert!(
        out.iter()
            .all(|l| l.starts_with("1> ") || l.starts_with("2> ")),
        "{out:?}"
    );
    assert_eq!(job.terminate().code(), Some(2), "CANCELED exits 2");
}

#[test]
fn configuration_file_then_dynamic_properties_then_code() {
    let conf = tempfile::tempdir().unwrap();
    let dir = conf.path().to_str().unwrap().to_string();
    std::fs::write(
        conf.path().join("floe.yaml"),
        "parallelism:\n  default: 2\n",
    )
    .unwrap();
    let env = [("FLOE_CONF_DIR", dir.as_str())];

    // The file sets parallelism 2: printed lines carry the subtask prefix.
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut job = Job::start_with_env("count_window_average", &["--port", &port], &env);
    server.wait_connections(1, T);
    server.send("1 2");
    server.send("1 4");
    let deadline = std::time::Instant::now() + T;
    while job.stdout().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = job.stdout();
    assert!(out.len() == 1 && out[0].ends_with("> (1,3)"), "{out:?}");
    assert_eq!(job.terminate().code(), Some(2), "CANCELED exits 2");

    // -D overrides the file.
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut job = Job::start_with_env(
        "count_window_average",
        &["-D", "parallelism.default=1", "--port", &port],
        &env,
    );
    server.wait_connections(1, T);
    server.send("1 2");
    server.send("1 4");
    job.expect_stdout(&["(1,3)"], T);
    assert_eq!(job.terminate().code(), Some(2), "CANCELED exits 2");

    // A bad file is a one-line error naming the file and the key.
    std::fs::write(
        conf.path().join("floe.yaml"),
        "execution.checkpointing.intervall: 1 s\n",
    )
    .unwrap();
    let mut job = Job::start_with_env("count_window_average", &["--port", "1"], &env);
    assert_eq!(job.wait_exit(T).code(), Some(1));
    let line = job
        .stderr()
        .into_iter()
        .find(|l| l.starts_with("error: "))
        .unwrap();
    assert!(
        line.contains("floe.yaml") && line.contains("'execution.checkpointing.intervall'"),
        "{line}"
    );
}
