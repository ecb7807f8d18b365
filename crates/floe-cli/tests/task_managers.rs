//! Task managers and the cluster's resource manager, with the real binaries: `floe cluster
//! start` and `floe taskmanager start|stop` daemons, `/taskmanagers`, `floe cluster status`,
//! heartbeat loss, re-registration, blob fetches into a task manager's cache, slot
//! requests, and worker processes started, killed and reported through
//! [`floe::cluster::RemoteLauncher`] (the launcher a per-job job manager uses).

mod common;

use common::{alive, cli, free_port, http, wait_until};
use floe::cluster::protocol::*;
use floe::runtime::workers::{PlacementError, WorkerCommand, WorkerLauncher};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// A cluster daemon without local task managers, and task managers started with
/// `floe taskmanager start`; all stopped (or killed by pid) when dropped.
struct Setup {
    dir: tempfile::TempDir,
    rest: String,
    rpc_port: u16,
    tms: Vec<PathBuf>,
    pids: Vec<u32>,
}

const FAST: [&str; 4] = [
    "-D",
    "heartbeat.interval=200ms",
    "-D",
    "heartbeat.timeout=1s",
];

impl Setup {
    fn start(extra: &[&str]) -> Setup {
        let s = Setup {
            dir: tempfile::tempdir().unwrap(),
            rest: format!("127.0.0.1:{}", free_port()),
            rpc_port: free_port(),
            tms: Vec::new(),
            pids: Vec::new(),
        };
        s.start_daemon(extra);
        s
    }

    fn start_daemon(&self, extra: &[&str]) {
        let rest = format!("rest.port={}", self.rest.rsplit(':').next().unwrap());
        let rpc = format!("jobmanager.rpc.port={}", self.rpc_port);
        let mut args = vec![
            "cluster",
            "start",
            "--taskmanagers",
            "0",
            "--dir",
            self.dir.path().to_str().unwrap(),
            "-D",
            &rest,
            "-D",
            &rpc,
        ];
        args.extend(FAST);
        args.extend(extra);
        let (code, out, err) = cli(&args);
        assert_eq!(code, 0, "{out}{err}");
    }

    fn daemon_pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("jobmanager.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Starts a task manager `id` with `slots` slots in a directory of its own.
    fn task_manager(&mut self, id: &str, slots: u32) -> PathBuf {
        let dir = self.dir.path().join(format!("tm-{id}"));
        let rpc = format!("jobmanager.rpc.port={}", self.rpc_port);
        let slots = format!("taskmanager.numberOfTaskSlots={slots}");
        let rid = format!("taskmanager.resource-id={id}");
        let mut args = vec![
            "taskmanager",
            "start",
            "--dir",
            dir.to_str().unwrap(),
            "-D",
            &rpc,
            "-D",
            &slots,
            "-D",
            &rid,
        ];
        args.extend(FAST);
        let (code, out, err) = cli(&args);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("Task manager {id} started")), "{out}");
        self.pids.push(tm_pid(&dir));
        if !self.tms.contains(&dir) {
            self.tms.push(dir.clone());
        }
        dir
    }

    /// `/taskmanagers`: (id, slotsNumber, freeSlots) in registration order.
    fn registered(&self) -> Vec<(String, u64, u64)> {
        let (code, v) = http(&self.rest, "GET", "/taskmanagers", None);
        assert_eq!(code, 200, "{v}");
        v["taskmanagers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["slotsNumber"].as_u64().unwrap(),
                    t["freeSlots"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn rpc(&self) -> String {
        format!("127.0.0.1:{}", self.rpc_port)
    }

    fn launcher(&self, blob: BlobKey, slot_timeout: &str) -> floe::cluster::RemoteLauncher {
        let mut conf = floe::config::Configuration::new();
        conf.set("slot.request.timeout", slot_timeout).unwrap();
        floe::cluster::RemoteLauncher::new(&conf, self.rpc(), floe::JobId::random(), blob).unwrap()
    }

    /// Stores `script` as a job binary in the cluster's blob store.
    fn blob(&self, script: &str) -> BlobKey {
        let src = self.dir.path().join(format!("job-{}", rand_suffix()));
        std::fs::write(&src, script).unwrap();
        floe::cluster::blob::store(&self.dir.path().join("blobs"), &src).unwrap()
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn tm_pid(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("taskmanager.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

impl Drop for Setup {
    fn drop(&mut self) {
        for d in &self.tms {
            let _ = cli(&["taskmanager", "stop", "--dir", d.to_str().unwrap()]);
        }
        let _ = cli(&["cluster", "stop", "-m", &self.rest]);
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("jobmanager.pid")) {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                self.pids.push(pid);
            }
        }
        for &pid in &self.pids {
            if alive(pid) {
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn task_managers_register_are_lost_and_register_again() {
    let mut s = Setup::start(&[]);
    s.task_manager("tm-a", 2);
    let b = s.task_manager("tm-b", 2);
    wait_until("both task managers are registered", || {
        s.registered() == [("tm-a".into(), 2, 2), ("tm-b".into(), 2, 2)]
    });
    let (_, o) = http(&s.rest, "GET", "/overview", None);
    assert_eq!(
        (
            o["taskmanagers"].as_u64(),
            o["slots-total"].as_u64(),
            o["slots-available"].as_u64()
        ),
        (Some(2), Some(4), Some(4))
    );
    let (code, d) = http(&s.rest, "GET", "/taskmanagers/tm-b", None);
    assert_eq!(code, 200);
    assert_eq!(d["slotsNumber"], 2);
    assert_eq!(d["host"], "127.0.0.1");
    assert_eq!(d["allocatedSlots"].as_array().unwrap().len(), 0);
    let (code, _) = http(&s.rest, "GET", "/taskmanagers/nope", None);
    assert_eq!(code, 404);
    let (code, out, _) = cli(&["cluster", "status", "-m", &s.rest]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Task managers: 2 with 4 slot(s), 4 free"),
        "{out}"
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|w: &Vec<&str>| w.first().is_some_and(|w| w.starts_with("tm-")))
        .collect();
    assert_eq!(
        rows,
        [
            ["tm-a", "127.0.0.1", "2", "2"],
            ["tm-b", "127.0.0.1", "2", "2"]
        ]
    );

    // A stopped (silent) task manager is lost after heartbeat.timeout (1 s) ...
    let pid_b = tm_pid(&b);
    unsafe {
        libc::kill(pid_b as i32, libc::SIGSTOP);
    }
    let stopped = Instant::now();
    wait_until("tm-b is lost", || s.registered().len() == 1);
    assert!(
        stopped.elapsed() >= Duration::from_millis(700),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(s.registered(), [("tm-a".into(), 2, 2)]);
    let (_, o) = http(&s.rest, "GET", "/overview", None);
    assert_eq!(o["slots-total"].as_u64(), Some(2));
    // ... and registers again once it runs again.
    unsafe {
        libc::kill(pid_b as i32, libc::SIGCONT);
    }
    wait_until("tm-b registered again", || s.registered().len() == 2);

    // kill -9: its slots are gone; a new task manager in its directory registers.
    unsafe {
        libc::kill(pid_b as i32, libc::SIGKILL);
    }
    wait_until("the killed tm-b is gone", || {
        s.registered() == [("tm-a".into(), 2, 2)]
    });
    s.task_manager("tm-b", 2);
    wait_until("the restarted tm-b registered", || {
        s.registered().len() == 2
    });

    // A job manager daemon killed and started again on the same port: the task managers
    // find it again by themselves.
    let jm = s.daemon_pid();
    unsafe {
        libc::kill(jm as i32, libc::SIGKILL);
    }
    wait_until("the daemon is gone", || !alive(jm));
    s.start_daemon(&[]);
    wait_until("both task managers registered with the new daemon", || {
        let mut r = s.registered();
        r.sort();
        r == [("tm-a".into(), 2, 2), ("tm-b".into(), 2, 2)]
    });
    let log = std::fs::read_to_string(b.join("taskmanager.log")).unwrap();
    assert!(
        log.contains("Successful registration at resource manager"),
        "{log}"
    );

    // `floe taskmanager stop` ends it: it is lost at once (its connection closes).
    let pid_b = tm_pid(&b);
    let (code, out, err) = cli(&["taskmanager", "stop", "--dir", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until("the stopped task manager process is gone", || !alive(pid_b));
    wait_until("the stopped tm-b is gone", || s.registered().len() == 1);
    let (code, _, err) = cli(&["taskmanager", "stop", "--dir", b.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no task manager is running in"), "{err}");
}

#[test]
fn slots_are_granted_packed_and_refused_when_too_few() {
    let mut s = Setup::start(&[]);
    s.task_manager("tm-a", 2);
    s.task_manager("tm-b", 2);
    wait_until("both registered", || s.registered().len() == 2);
    let blob = s.blob("#!/bin/sh\nexit 0\n");
    let never = AtomicBool::new(false);

    let one = s.launcher(blob.clone(), "1s");
    let p = one.place(1, 3, &never).unwrap();
    let summary: Vec<(u32, u32, Option<&str>)> = p
        .processes
        .iter()
        .map(|p| (p.index, p.threads, p.task_manager.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 1, Some("tm-a")),
            (1, 1, Some("tm-a")),
            (2, 1, Some("tm-b"))
        ]
    );
    assert_eq!(
        s.registered(),
        [("tm-a".into(), 2, 0), ("tm-b".into(), 2, 1)]
    );
    let (_, d) = http(&s.rest, "GET", "/taskmanagers/tm-b", None);
    assert_eq!(d["allocatedSlots"].as_array().unwrap().len(), 1);

    // Another job wants 2: only 1 is free. It waits slot.request.timeout, then fails.
    let other = s.launcher(blob.clone(), "1s");
    let started = Instant::now();
    let e = other.place(1, 2, &never).unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        matches!(
            e,
            PlacementError::NotEnoughSlots {
                required: 2,
                available: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(
            "Could not acquire the minimum required resources: 2 slot(s) required, 1 available after waiting"
        ),
        "{e}"
    );
    // A cancelled wait ends at once.
    let cancel = AtomicBool::new(true);
    assert!(matches!(
        s.launcher(blob.clone(), "5min").place(1, 2, &cancel),
        Err(PlacementError::Cancelled)
    ));

    // A new attempt of the same job replaces its grant; releasing frees it.
    let p = one.place(2, 4, &never).unwrap();
    assert_eq!(p.processes.len(), 2);
    assert!(p.processes.iter().all(|p| p.threads == 2));
    assert_eq!(
        s.registered(),
        [("tm-a".into(), 2, 0), ("tm-b".into(), 2, 0)]
    );
    one.release(2);
    assert_eq!(
        s.registered(),
        [("tm-a".into(), 2, 2), ("tm-b".into(), 2, 2)]
    );

    // The job manager going away frees its slots too.
    other.place(1, 2, &never).unwrap();
    assert_eq!(s.registered()[0], ("tm-a".into(), 2, 0));
    drop(other);
    wait_until("the dropped job's slots are free", || {
        s.registered() == [("tm-a".into(), 2, 2), ("tm-b".into(), 2, 2)]
    });
}

fn wait_exit(h: &dyn floe::runtime::workers::WorkerHandle) -> String {
    let mut status = None;
    wait_until("the worker ended", || {
        status = h.exit_status();
        status.is_some()
    });
    status.unwrap()
}

#[test]
fn workers_run_from_the_blob_cache_and_end_as_reported() {
    let mut s = Setup::start(&[]);
    let tm = s.task_manager("tm-a", 2);
    wait_until("registered", || s.registered().len() == 1);
    let blob = s.blob("#!/bin/sh\necho \"args $1 env $FLOE_TEST_VALUE\"\nexec sleep 60\n");
    let launcher = s.launcher(blob.clone(), "5s");
    let never = AtomicBool::new(false);
    let placement = launcher.place(1, 2, &never).unwrap();
    assert_eq!(placement.processes.len(), 1);
    let slot = &placement.processes[0];
    assert_eq!((slot.host.as_str(), slot.threads), ("127.0.0.1", 2));
    let command = WorkerCommand {
        args: vec!["first".into()],
        env: vec![("FLOE_TEST_VALUE".into(), "42".into())],
    };
    let h = launcher.spawn(1, slot, &command).unwrap();
    assert!(alive(h.pid()));
    assert_eq!(h.exit_status(), None);
    // The job binary is cached by its hash, executable.
    let cached = tm.join("blobs").join(blob.as_str());
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&cached).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    }
    assert_eq!(floe::cluster::blob::hash_file(&cached).unwrap(), blob);
    let out = tm
        .join("workers")
        .join(
            std::fs::read_dir(tm.join("workers"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name(),
        )
        .join("attempt-1-process-0.out");
    wait_until("the worker printed", || {
        std::fs::read_to_string(&out).unwrap_or_default() == "args first env 42\n"
    });
    // Killed on request: its exit is reported.
    h.kill();
    assert_eq!(wait_exit(h.as_ref()), "killed by signal 9");
    launcher.release(1);

    // A corrupted cached copy is fetched again (its hash no longer matches).
    std::fs::write(&cached, "#!/bin/sh\nexit 7\n").unwrap();
    let placement = launcher.place(2, 2, &never).unwrap();
    let h = launcher
        .spawn(2, &placement.processes[0], &command)
        .unwrap();
    assert_eq!(floe::cluster::blob::hash_file(&cached).unwrap(), blob);
    assert_eq!(h.exit_status(), None);
    // The job manager going away (its connections close) kills its workers.
    let pid = h.pid();
    launcher.release(2);
    wait_until("the orphaned worker is killed", || !alive(pid));
    let log = std::fs::read_to_string(tm.join("taskmanager.log")).unwrap();
    assert!(
        log.contains("Received task: worker process 0 of attempt 1"),
        "{log}"
    );

    // A blob the server does not hold: the start fails, naming it.
    let missing = s.launcher(BlobKey::of(b"not stored"), "5s");
    let placement = missing.place(1, 1, &never).unwrap();
    let e = missing
        .spawn(1, &placement.processes[0], &command)
        .err()
        .expect("a missing blob fails the start");
    let text = format!("{e:#}");
    assert!(
        text.contains("cannot fetch the job binary") && text.contains("no blob"),
        "{text}"
    );
    assert!(
        matches!(e, floe::runtime::workers::SpawnError::Failed(_)),
        "{e:?}"
    );
}

#[test]
fn a_lost_task_manager_ends_its_workers_and_an_unreachable_one_is_typed() {
    let mut s = Setup::start(&[]);
    let tm = s.task_manager("tm-a", 1);
    wait_until("registered", || s.registered().len() == 1);
    let blob = s.blob("#!/bin/sh\nexec sleep 60\n");
    let launcher = s.launcher(blob, "5s");
    let never = AtomicBool::new(false);
    let placement = launcher.place(1, 1, &never).unwrap();
    let h = launcher
        .spawn(1, &placement.processes[0], &WorkerCommand::default())
        .unwrap();
    let worker = h.pid();
    // The task manager dies: the worker's status says so (the worker itself lives on
    // until its job manager connection dies; here the test kills it).
    unsafe {
        libc::kill(tm_pid(&tm) as i32, libc::SIGKILL);
    }
    let status = wait_exit(h.as_ref());
    assert!(
        status.starts_with("task manager tm-a (127.0.0.1:"),
        "{status}"
    );
    assert!(status.contains("was lost"), "{status}");
    unsafe {
        libc::kill(-(worker as i32), libc::SIGKILL);
    }
    // Spawning on it now: a typed error, so the executor places the attempt again.
    let e = launcher
        .spawn(2, &placement.processes[0], &WorkerCommand::default())
        .err()
        .unwrap();
    // Attempt 2 holds no grant: not the unreachable case.
    assert!(e.to_string().contains("holds no slots"), "{e}");
    let e = launcher
        .spawn(1, &placement.processes[0], &WorkerCommand::default())
        .err()
        .unwrap();
    match e {
        floe::runtime::workers::SpawnError::Unreachable { task_manager, .. } => {
            assert_eq!(task_manager, "tm-a")
        }
        other => panic!("not typed: {other:#}"),
    }
}

#[test]
fn a_task_manager_registers_again_with_the_workers_it_still_runs() {
    let mut s = Setup::start(&[]);
    s.task_manager("tm-a", 2);
    wait_until("registered", || s.registered().len() == 1);
    let blob = s.blob("#!/bin/sh\nexec sleep 60\n");
    let launcher = s.launcher(blob, "5s");
    let placement = launcher.place(1, 1, &AtomicBool::new(false)).unwrap();
    let h = launcher
        .spawn(1, &placement.processes[0], &WorkerCommand::default())
        .unwrap();
    // The job manager daemon is killed and started again: the worker runs on (its job
    // manager's connection to the task manager is intact) and the task manager brings it
    // along when it registers again, its slot still in use.
    let jm = s.daemon_pid();
    unsafe {
        libc::kill(jm as i32, libc::SIGKILL);
    }
    wait_until("the daemon is gone", || !alive(jm));
    s.start_daemon(&[]);
    wait_until("tm-a registered again with its worker", || {
        s.registered() == [("tm-a".into(), 2, 1)]
    });
    let (_, d) = http(&s.rest, "GET", "/taskmanagers/tm-a", None);
    assert_eq!(d["workers"][0]["pid"].as_u64(), Some(u64::from(h.pid())));
    assert_eq!(d["workers"][0]["attempt"], 1);
    assert!(alive(h.pid()));
    assert_eq!(h.exit_status(), None);
    h.kill();
    assert_eq!(wait_exit(h.as_ref()), "killed by signal 9");
    wait_until("its slot is free once the worker ended", || {
        s.registered() == [("tm-a".into(), 2, 2)]
    });
}
