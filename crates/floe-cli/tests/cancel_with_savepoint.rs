//! `floe cancel -s` (Flink's `cancel -s <targetDirectory>`) through the real binaries, on a
//! session cluster: a savepoint is taken, the job ends CANCELED (not FINISHED, as `stop`
//! ends it), and the savepoint restores.

use std::io::Write;
use std::net::TcpListener;

mod common;
use common::{cli, SessionCluster};

#[test]
fn cancel_with_savepoint_ends_canceled_and_leaves_a_savepoint_that_restores() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for mut c in listener.incoming().map_while(Result::ok) {
            let _ = c.write_all(b"1 3\n1 5\n");
            open.push(c);
        }
    });
    let c = SessionCluster::start();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let id = c.submit(port, ck.path(), &[]);
    c.wait_for_state(&id, "RUNNING");

    let (code, out, err) = cli(&[
        "cancel",
        "-m",
        &c.addr,
        "-s",
        sp.path().to_str().unwrap(),
        &id,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "Cancelling job {id} with CANONICAL savepoint to {}.",
            sp.path().display()
        )),
        "{out}"
    );
    let stored = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("Cancelled job {id}. Savepoint stored in ")))
        .unwrap_or_else(|| panic!("no savepoint path in: {out}"))
        .trim_end_matches('.')
        .to_string();
    let dir = stored.strip_prefix("file:").expect("a file: URL");
    assert!(
        std::path::Path::new(dir).join("_metadata").is_file(),
        "{dir}"
    );
    assert!(std::path::Path::new(dir).starts_with(sp.path()), "{dir}");
    c.wait_for_state(&id, "CANCELED");

    // The savepoint is one the job can be resumed from.
    let (code, out, err) = cli(&[
        "savepoint",
        "check",
        &stored,
        common::job_binary().to_str().unwrap(),
        "--port",
        &port.to_string(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Result: the snapshot restores into this job."),
        "{out}"
    );
}
