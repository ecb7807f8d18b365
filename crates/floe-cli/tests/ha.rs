//! Job manager high availability with the real binaries: a session cluster with
//! `high-availability.storageDir` runs a checkpointed `exactly_once_word_count`; its job
//! manager host dies (`kill -9` of the daemon and of the job's job manager process; the
//! job's worker processes then exit by themselves); `floe cluster start` again — on the
//! same cluster directory, or on a new one ("another host") with the same storage
//! directory — takes the job back: same job id, RUNNING, restored from its latest completed
//! checkpoint, then FINISHED with every `(word,n)` exactly once. A FINISHED job is not
//! brought back by a restart; a corrupt HA record is one error line naming its file and the
//! other jobs are still taken back.

mod common;

use common::{alive, cli, floe, free_port, http, wait_until};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The exactly-once example job next to `floe`, built first.
fn word_count() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "floe-examples",
                "--bin",
                "exactly_once_word_count",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "building exactly_once_word_count failed");
    });
    floe().with_file_name("exactly_once_word_count")
}

/// Writes `words` words over 4 files; returns each word's count.
fn write_input(dir: &Path, words: usize) -> HashMap<String, u64> {
    let mut exact = HashMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for f in 0..4 {
        let mut text = String::new();
        for i in 0..words / 4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = format!("w{}", x % 200);
            text.push_str(&w);
            text.push(if i % 10 == 9 { '\n' } else { ' ' });
            *exact.entry(w).or_insert(0) += 1;
        }
        text.push('\n');
        std::fs::write(dir.join(format!("words-{f}.txt")), text).unwrap();
    }
    exact
}

/// Missing and extra `(word,n)` lines in the committed part files of `out`.
fn check(out: &Path, exact: &HashMap<String, u64>) -> (u64, u64) {
    let mut seen: HashMap<(String, u64), u64> = HashMap::new();
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("part-") {
            continue;
        }
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            let (w, n) = l
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split_once(',')
                .unwrap_or_else(|| panic!("bad line {l:?} in {name}"));
            *seen.entry((w.to_string(), n.parse().unwrap())).or_default() += 1;
        }
    }
    let (mut lost, mut extra) = (0, 0);
    for (w, &c) in exact {
        for n in 1..=c {
            match seen.remove(&(w.clone(), n)).unwrap_or(0) {
                0 => lost += 1,
                k => extra += k - 1,
            }
        }
    }
    extra += seen.values().sum::<u64>();
    (lost, extra)
}

/// Pids of the processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn kill9(pid: u32) {
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// A job manager host: a cluster directory and REST port, and the HA storage shared by
/// every host. Dropped, it stops its daemon and kills by pid every process it saw.
struct Host {
    dir: tempfile::TempDir,
    addr: String,
    /// The job manager's RPC port: the one address task managers know it by.
    rpc_port: u16,
    /// How many local task managers its daemon starts.
    task_managers: u32,
    ha: PathBuf,
    seen: std::cell::RefCell<Vec<u32>>,
}

impl Host {
    fn new(ha: &Path, rpc_port: u16, task_managers: u32) -> Host {
        Host {
            dir: tempfile::tempdir().unwrap(),
            addr: format!("127.0.0.1:{}", free_port()),
            rpc_port,
            task_managers,
            ha: ha.to_path_buf(),
            seen: Default::default(),
        }
    }

    fn start(&self) {
        let port = self.addr.rsplit(':').next().unwrap().to_string();
        let (code, out, err) = cli(&[
            "cluster",
            "start",
            "--dir",
            self.dir.path().to_str().unwrap(),
            "--taskmanagers",
            &self.task_managers.to_string(),
            "-D",
            &format!("rest.port={port}"),
            "-D",
            &format!("jobmanager.rpc.port={}", self.rpc_port),
            "-D",
            "taskmanager.numberOfTaskSlots=2",
            "-D",
            &format!("high-availability.storageDir=file://{}", self.ha.display()),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let mut seen = self.seen.borrow_mut();
        seen.push(self.daemon_pid());
        seen.extend(self.task_managers());
    }

    /// The pids of the local task managers the daemon started.
    fn task_managers(&self) -> Vec<u32> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("taskmanager-"))
            .filter_map(|e| std::fs::read_to_string(e.path().join("taskmanager.pid")).ok())
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }

    fn daemon_pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("jobmanager.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("jobmanager.log")).unwrap_or_default()
    }

    /// The pid of job `id`'s job manager process, from the registry.
    fn job_manager(&self, id: &str) -> u32 {
        let path = self.dir.path().join("jobs").join(format!("{id}.json"));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let pid = r["pid"].as_u64().unwrap() as u32;
        self.seen.borrow_mut().push(pid);
        pid
    }

    fn state(&self, id: &str) -> String {
        http(&self.addr, "GET", &format!("/jobs/{id}"), None).1["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_for_state(&self, id: &str, state: &str) {
        wait_until(&format!("job {id} is {state}"), || self.state(id) == state);
    }

    fn checkpoints(&self, id: &str) -> serde_json::Value {
        http(&self.addr, "GET", &format!("/jobs/{id}/checkpoints"), None).1
    }

    /// The job manager host dies: its daemon, then the job's job manager process; the
    /// job's worker processes (run by the task manager, which lives on) are killed by it.
    fn die(&self, id: &str) {
        let daemon = self.daemon_pid();
        let jm = self.job_manager(id);
        let workers: Vec<u32> = self
            .task_managers()
            .into_iter()
            .flat_map(children_of)
            .collect();
        assert!(!workers.is_empty(), "the job runs in worker processes");
        self.seen.borrow_mut().extend(&workers);
        kill9(daemon);
        kill9(jm);
        wait_until("the job manager host is gone", || {
            !alive(daemon) && !alive(jm)
        });
        wait_until("the dead job manager's workers exit by themselves", || {
            workers.iter().all(|w| !alive(*w))
        });
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new(floe())
            .args(["cluster", "stop", "-m", &self.addr])
            .env_remove("FLOE_CONF_DIR")
            .output();
        for pid in self.seen.borrow().iter() {
            if alive(*pid) {
                kill9(*pid);
            }
        }
    }
}

struct Dirs {
    _tmp: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    ck: PathBuf,
    ha: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let d = |n: &str| {
        let p = tmp.path().join(n);
        std::fs::create_dir(&p).unwrap();
        p
    };
    Dirs {
        input: d("in"),
        out: d("out"),
        ck: d("ck"),
        ha: d("ha"),
        _tmp: tmp,
    }
}

/// Submits the word count detached (parallelism 2, checkpoints every 300 ms, paced so that
/// it runs for seconds); returns its job id.
fn submit(h: &Host, d: &Dirs) -> String {
    let job = word_count();
    let ck = format!("execution.checkpointing.dir={}", d.ck.display());
    let (code, out, err) = cli(&[
        "run",
        "-m",
        &h.addr,
        "-d",
        "-p",
        "2",
        "-D",
        &ck,
        "-D",
        "execution.checkpointing.interval=300ms",
        job.to_str().unwrap(),
        "--input",
        d.input.to_str().unwrap(),
        "--output",
        d.out.to_str().unwrap(),
        "--part-size",
        "2000",
        "--words-per-second",
        "2000",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    out.trim()
        .strip_prefix("Job has been submitted with JobID ")
        .unwrap_or_else(|| panic!("no job id in: {out}"))
        .to_string()
}

fn completed_checkpoints(h: &Host, id: &str) -> u64 {
    h.checkpoints(id)["counts"]["completed"]
        .as_u64()
        .unwrap_or(0)
}

/// Runs the job on `first` (started) until it completed checkpoints, kills that host, takes
/// the job back on `second` and checks the outcome; returns the job id.
fn fail_over(first: &Host, second: &Host, d: &Dirs, exact: &HashMap<String, u64>) -> String {
    let id = submit(first, d);
    first.wait_for_state(&id, "RUNNING");
    wait_until("two checkpoints completed", || {
        completed_checkpoints(first, &id) >= 2
    });
    assert_eq!(
        first.state(&id),
        "RUNNING",
        "the job ran too fast for the test"
    );
    first.die(&id);
    // A chk-<n> the dead job manager left half-written: the job taking its place skips it.
    let job_dir = d.ck.join(&id);
    let chks: Vec<u64> = std::fs::read_dir(&job_dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("chk-")?
                .parse::<u64>()
                .ok()
        })
        .collect();
    let highest = *chks.iter().max().unwrap();
    let complete = chks
        .iter()
        .copied()
        .filter(|n| job_dir.join(format!("chk-{n}/_metadata")).is_file())
        .max()
        .unwrap();
    std::fs::create_dir(job_dir.join(format!("chk-{}", highest + 1))).unwrap();

    second.start();
    second.wait_for_state(&id, "RUNNING");
    let new_jm = second.job_manager(&id);
    assert!(alive(new_jm));
    wait_until("the taken-back job reports its restore", || {
        !second.checkpoints(&id)["latest"]["restored"].is_null()
    });
    let restored = second.checkpoints(&id)["latest"]["restored"].clone();
    // Its latest completed checkpoint, as the dead job manager left it.
    assert_eq!(
        restored["external_path"].as_str().unwrap(),
        format!("file:{}", job_dir.join(format!("chk-{complete}")).display()),
        "{restored}"
    );
    assert_eq!(restored["id"].as_u64(), Some(complete), "{restored}");
    assert!(
        second.log().contains(&format!("Took back job {id}")),
        "{}",
        second.log()
    );
    second.wait_for_state(&id, "FINISHED");
    // Nothing of the dead job manager got in the way: no task failed, no checkpoint failed
    // (the half-written chk-<n> was skipped), and its attempts continued the dead one's.
    let cps = second.checkpoints(&id);
    assert_eq!(cps["counts"]["failed"].as_u64(), Some(0), "{cps}");
    assert!(cps["counts"]["completed"].as_u64().unwrap() >= 1, "{cps}");
    let (_, exceptions) = http(&second.addr, "GET", &format!("/jobs/{id}/exceptions"), None);
    assert_eq!(
        exceptions["exceptionHistory"]["entries"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "{exceptions}"
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(second.dir.path().join("jobs").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    let log = std::fs::read_to_string(record["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("is taken back from high-availability storage: attempt 1,"),
        "{log}"
    );
    assert_eq!(
        check(&d.out, exact),
        (0, 0),
        "lost and extra (word,n) lines"
    );
    // Both job managers' attempts committed output, under different attempt numbers.
    let token = &id[..16];
    let attempts: std::collections::BTreeSet<u32> = std::fs::read_dir(&d.out)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_string();
            let rest = n
                .strip_prefix("part-")?
                .split_once('-')?
                .1
                .strip_prefix(token)?;
            rest.strip_prefix('-')?.split('-').next()?.parse().ok()
        })
        .collect();
    assert!(
        attempts.len() >= 2 && attempts.contains(&0),
        "committed part files of attempts {attempts:?}"
    );
    // Its record went with it.
    wait_until("the finished job's HA record is removed", || {
        !d.ha.join("default/jobs").join(&id).exists()
    });
    id
}

/// Starts `h` and returns the pid of its one local task manager.
fn host_task_manager(h: &Host) -> u32 {
    h.start();
    let tms = h.task_managers();
    assert_eq!(tms.len(), 1, "{tms:?}");
    tms[0]
}

#[test]
fn a_restarted_job_manager_takes_its_job_back_exactly_once() {
    let d = dirs();
    let exact = write_input(&d.input, 24_000);
    let host = Host::new(&d.ha, free_port(), 1);
    let tm = host_task_manager(&host);
    let id = fail_over(&host, &host, &d, &exact);
    // Its task manager lived on and re-registered with the restarted job manager.
    assert_eq!(host.task_managers(), vec![tm]);
    assert!(alive(tm));
    // The job's files of both job managers are kept.
    let outs = std::fs::read_dir(host.dir.path().join("jobs"))
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&id) && n.ends_with(".log")
        })
        .count();
    assert_eq!(outs, 2, "the dead and the new job manager's logs");
    // A FINISHED job is not brought back by a restart.
    let daemon = host.daemon_pid();
    kill9(daemon);
    wait_until("the daemon is gone", || !alive(daemon));
    host.start();
    assert_eq!(host.state(&id), "FINISHED");
    assert_eq!(
        host.log()
            .matches(&format!(
                "Took back job {id} from high-availability storage"
            ))
            .count(),
        1,
        "{}",
        host.log()
    );
    assert_eq!(check(&d.out, &exact), (0, 0));
}

#[test]
fn another_host_takes_the_job_back_and_a_corrupt_record_does_not_stop_it() {
    let d = dirs();
    let exact = write_input(&d.input, 24_000);
    // The new job manager host has the address task managers know (a moved DNS name or
    // virtual IP); it starts no task manager: the job runs again on the first host's task
    // manager once that re-registered.
    let rpc = free_port();
    let first = Host::new(&d.ha, rpc, 1);
    let second = Host::new(&d.ha, rpc, 0);
    let tm = host_task_manager(&first);
    // A record that cannot be read, of some other job.
    let other = "0123456789abcdef0123456789abcdef";
    let bad =
        d.ha.join("default/jobs")
            .join(other)
            .join("submission.json");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, b"{ not json").unwrap();
    let id = fail_over(&first, &second, &d, &exact);
    assert!(second.task_managers().is_empty());
    assert!(
        alive(tm),
        "the first host's task manager ran the job taken back"
    );
    let log = second.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("error: ") && l.contains(bad.to_str().unwrap()))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(bad.is_file(), "a record that cannot be read is kept");
    // A third host takes nothing back: the job finished.
    let third = Host::new(&d.ha, free_port(), 0);
    third.start();
    let (code, _) = http(&third.addr, "GET", &format!("/jobs/{id}"), None);
    assert_eq!(code, 404);
    assert!(!third.log().contains("Took back job"), "{}", third.log());
}
