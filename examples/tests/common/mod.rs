//! Test harness: real job processes and a real line server on 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Like `nc -lk PORT`: accepts connections and writes lines to the newest one.
pub struct LineServer {
    pub port: u16,
    conns: Arc<(Mutex<Vec<TcpStream>>, Condvar)>,
}

impl LineServer {
    pub fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conns: Arc<(Mutex<Vec<TcpStream>>, Condvar)> =
            Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let c = Arc::clone(&conns);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                c.0.lock().unwrap().push(s);
                c.1.notify_all();
            }
        });
        LineServer { port, conns }
    }

    /// Waits until `n` connections have been accepted in total.
    pub fn wait_connections(&self, n: usize, timeout: Duration) {
        let (m, cv) = &*self.conns;
        let g = m.lock().unwrap();
        let (g, r) = cv.wait_timeout_while(g, timeout, |v| v.len() < n).unwrap();
        assert!(
            !r.timed_out(),
            "expected {n} connections to the line server, got {}",
            g.len()
        );
    }

    pub fn connections(&self) -> usize {
        self.conns.0.lock().unwrap().len()
    }

    /// Sends one line to the newest connection.
    pub fn send(&self, line: &str) {
        let mut g = self.conns.0.lock().unwrap();
        let s = g.last_mut().expect("no connection");
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        s.flush().unwrap();
    }
}

#[derive(Default)]
struct Output {
    stdout: Vec<String>,
    stderr: Vec<String>,
}

/// A job binary running as a real process, its output captured line by line.
pub struct Job {
    child: Child,
    out: Arc<(Mutex<Output>, Condvar)>,
    pub name: String,
}

pub fn bin(name: &str) -> PathBuf {
    let p = match name {
        "state_word_count" => env!("CARGO_BIN_EXE_state_word_count"),
        "count_window_average" => env!("CARGO_BIN_EXE_count_window_average"),
        "file_word_count" => env!("CARGO_BIN_EXE_file_word_count"),
        "exactly_once_word_count" => env!("CARGO_BIN_EXE_exactly_once_word_count"),
        "window_word_count" => env!("CARGO_BIN_EXE_window_word_count"),
        other => panic!("unknown binary {other}"),
    };
    PathBuf::from(p)
}

impl Job {
    pub fn start(name: &str, args: &[&str]) -> Job {
        Self::start_with_env(name, args, &[])
    }

    /// Runs the job through `floe run <job-binary> args...` (per-job mode).
    pub fn start_via_floe_run(name: &str, args: &[&str]) -> Job {
        let b = bin(name);
        let mut full = vec!["run", b.to_str().unwrap()];
        full.extend_from_slice(args);
        Self::spawn(floe_cli(), name, &full, &[])
    }

    pub fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Job {
        Self::spawn(bin(name), name, args, env)
    }

    fn spawn(program: PathBuf, name: &str, args: &[&str], env: &[(&str, &str)]) -> Job {
        let mut child = Command::new(program)
            .args(args)
            .env("FLOE_LOG", "info")
            .env_remove("FLOE_CONF_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out: Arc<(Mutex<Output>, Condvar)> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (is_err, r) in [
            (false, Box::new(stdout) as Box<dyn std::io::Read + Send>),
            (true, Box::new(stderr)),
        ] {
            let o = Arc::clone(&out);
            let tag = name.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { return };
                    if is_err {
                        eprintln!("[{tag}] {line}");
                    } else {
                        eprintln!("[{tag} stdout] {line}");
                    }
                    let mut g = o.0.lock().unwrap();
                    if is_err {
                        g.stderr.push(line);
                    } else {
                        g.stdout.push(line);
                    }
                    o.1.notify_all();
                }
            });
        }
        Job {
            child,
            out,
            name: name.to_string(),
        }
    }

    /// The process id (of the job manager, for a job binary run directly).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The job's printed records (without `floe run`'s submission and result lines).
    pub fn stdout(&self) -> Vec<String> {
        self.out
            .0
            .lock()
            .unwrap()
            .stdout
            .iter()
            .filter(|l| !is_cli_line(l))
            .cloned()
            .collect()
    }

    /// Everything written to stdout, `floe run`'s lines included.
    pub fn raw_stdout(&self) -> Vec<String> {
        self.out.0.lock().unwrap().stdout.clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.out.0.lock().unwrap().stderr.clone()
    }

    fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&Output) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.out;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(v) = f(&g) {
                return v;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}\nstdout: {:?}",
                g.stdout
            );
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits until stdout holds exactly `expected` (in order).
    pub fn expect_stdout(&self, expected: &[&str], timeout: Duration) {
        let want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        self.wait_until(timeout, &format!("stdout {want:?}"), |o| {
            (o.stdout.iter().filter(|l| !is_cli_line(l)).count() >= want.len()).then_some(())
        });
        assert_eq!(self.stdout(), want, "printed output of {}", self.name);
    }

    /// Waits for a stderr line containing `pat` at or after line index `from`; returns its index.
    pub fn wait_stderr(&self, pat: &str, from: usize, timeout: Duration) -> usize {
        self.wait_until(timeout, &format!("log line containing '{pat}'"), |o| {
            o.stderr
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| l.contains(pat))
                .map(|(i, _)| i)
        })
    }

    pub fn stderr_len(&self) -> usize {
        self.out.0.lock().unwrap().stderr.len()
    }

    /// Waits for a checkpoint triggered after now to complete; returns its id.
    pub fn wait_next_checkpoint(&self, timeout: Duration) -> u64 {
        let mark = self.stderr_len();
        let i = self.wait_stderr("Triggering checkpoint ", mark, timeout);
        let id = number_after(&self.stderr()[i], "Triggering checkpoint ");
        self.wait_stderr(&format!("Completed checkpoint {id} "), i, timeout);
        id
    }

    /// The job id from the submission log line.
    pub fn job_id(&self) -> String {
        let i = self.wait_stderr("Submitting job ", 0, Duration::from_secs(30));
        let l = self.stderr()[i].clone();
        let id = l
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(").")
            .to_string();
        assert_eq!(id.len(), 32, "job id in {l:?}");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        id
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // let the output threads drain
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the worker process of the latest attempt, from the job manager's log.
    pub fn worker_pid(&self, from: usize) -> u32 {
        let i = self.wait_stderr("Started worker process ", from, T);
        number_after(&self.stderr()[i], "Started worker process ") as u32
    }

    /// SIGTERM: cancels the job (CANCELED).
    pub fn terminate(&mut self) -> ExitStatus {
        unsafe_kill(self.child.id(), 15);
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_cli_line(l: &str) -> bool {
    l.starts_with("Job has been submitted with JobID ") || l.starts_with("Job with JobID ")
}

/// The `floe` CLI binary, brought up to date once per test binary.
pub fn floe_cli() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-q", "-p", "floe-cli", "--bin", "floe"])
            .status()
            .unwrap();
        assert!(st.success(), "building the floe CLI failed");
    });
    bin("state_word_count").with_file_name("floe")
}

/// The `floe` CLI as a command that reads no configuration directory named by the
/// environment (FLOE_CONF_DIR unset); the caller adds arguments, environment and streams.
pub fn floe_command() -> Command {
    let mut c = Command::new(floe_cli());
    c.env_remove("FLOE_CONF_DIR");
    c
}

/// Runs `floe args...` (see [`floe_command`]); returns exit code, stdout and stderr.
pub fn floe(args: &[&str]) -> (i32, String, String) {
    outcome(floe_command().args(args).output().unwrap())
}

/// Runs `floe args...` (see [`floe_command`]) in `cwd`; returns exit code, stdout and stderr.
pub fn floe_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    outcome(floe_command().args(args).current_dir(cwd).output().unwrap())
}

/// A finished process's exit code (-1 when a signal ended it), stdout and stderr.
fn outcome(o: std::process::Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// `chk-<n>` directories under `dir/<job_id>`, sorted by n.
pub fn checkpoints(dir: &Path, job_id: &str) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir.join(job_id))
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e
                        .file_name()
                        .to_string_lossy()
                        .strip_prefix("chk-")?
                        .parse()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub const T: Duration = Duration::from_secs(30);

/// The number that follows `marker` in a log line.
fn number_after(line: &str, marker: &str) -> u64 {
    line.split(marker)
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{marker}' in: {line}"))
}
