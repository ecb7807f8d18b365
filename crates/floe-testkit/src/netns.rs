//! Several "hosts" on one machine: network namespaces on a bridge.
//!
//! [`Hosts::create`] builds `n` network namespaces ("hosts") and one "switch" namespace holding
//! a bridge, with one veth pair per host (the host end `eth0`, the switch end `sw-h<n>`), exactly
//! the layout of the scale-out research (§A.5). The root namespace gets no veth, so nothing a
//! test starts on a host can reach the machine's real network, and the root namespace cannot
//! reach the hosts either: a test talks to them through processes it starts on a host
//! ([`Host::command`], [`Host::spawn`]) or through sockets it opens on a host ([`Host::run`]).
//!
//! Names and addresses: hosts are indexed from 0 in this API, and host `i` is "host `n = i + 1`"
//! on the network, as `scripts/netns-cluster.sh` and `docs/deployment.md` number them: instance
//! `s` of process `pid` names its namespaces `floe-<pid>-<s>-h<n>` and `floe-<pid>-<s>-sw` and
//! gives host `n` the address `198.18.0.0/15` + `s * 256 + n` (a /24 of its own). `s` is
//! claimed machine-wide ([`Subnet`], a create-only lock file under `/run/floe-testkit/subnets/`),
//! so concurrent test binaries never share a subnet. Namespaces and claims of processes that
//! died without cleaning up (a crashed or SIGKILLed test run) are removed by [`sweep_stale`],
//! which every [`Hosts::create`] runs first.
//!
//! Faults: [`Hosts::link_down`] takes the switch end of a host's veth down (power loss or a
//! partition: packets vanish, no RST), [`Hosts::kill_all`] SIGKILLs every process on a host (a
//! crash), [`Hosts::freeze`] SIGSTOPs them (a hung host). Dropping [`Hosts`] kills every process
//! in its namespaces and deletes them, also when a test panics.
//!
//! Needs root and iproute2's `ip`; without them [`Hosts::create`] fails with a message saying
//! which is missing, so a test run on the wrong machine fails rather than skips.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The RFC 2544 benchmarking range, 198.18.0.0/15: 512 /24 subnets, never routed on the internet.
const RANGE_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// /24 subnets in the range. Subnet 0 (198.18.0.0/24) is left to `scripts/netns-cluster.sh`.
const SUBNETS: u32 = 512;
/// Where `ip` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Machine-wide claims of subnets (`<s>` holding the claiming pid), on tmpfs like the namespaces.
const LOCK_DIR: &str = "/run/floe-testkit/subnets";
/// Most hosts one instance builds: the last address of a /24 is .254 (.255 is broadcast).
const MAX_HOSTS: usize = 254;

/// Instances created by this process, to spread the first subnet each tries.
static CREATED: AtomicU32 = AtomicU32::new(0);

/// A /24 of 198.18.0.0/15 claimed machine-wide for this process, with the namespace name
/// prefix [`sweep_stale`] knows (`floe-<pid>-<s>`); released when dropped. [`Hosts`] claims
/// one itself; claim one directly to build namespaces by other means (such as
/// `scripts/netns-cluster.sh` with `FLOE_NETNS_PREFIX` / `FLOE_NETNS_NET`) that a crashed run
/// still gets swept.
pub struct Subnet {
    /// Index of the /24 within 198.18.0.0/15 (1..512; 0 is `scripts/netns-cluster.sh`'s).
    index: u32,
    lock: PathBuf,
}

impl Subnet {
    /// Claims a free /24 (a create-only lock file under `/run/floe-testkit/subnets/`).
    pub fn claim() -> Result<Subnet> {
        let (index, lock) = claim_subnet(std::process::id())?;
        Ok(Subnet { index, lock })
    }

    /// Its network address, e.g. `198.18.7.0`.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(RANGE_BASE + self.index * 256)
    }

    /// Its address ending in `.n` (host `n`, 1-based).
    pub fn address(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::from(RANGE_BASE + self.index * 256 + u32::from(n))
    }

    /// `floe-<pid>-<s>`: namespaces named `<prefix>-h<n>` or `<prefix>-sw` are this claim's,
    /// and [`sweep_stale`] removes them once this process is gone.
    pub fn prefix(&self) -> String {
        format!("floe-{}-{}", std::process::id(), self.index)
    }
}

impl Drop for Subnet {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.lock);
    }
}

/// Network-namespace hosts on one bridge; dropped, it kills their processes and deletes them.
pub struct Hosts {
    /// `floe-<pid>-<subnet>`, the prefix of every namespace name.
    prefix: String,
    /// Namespace holding the bridge `br0` and the switch ends `sw-h<n>`.
    switch: String,
    hosts: Vec<Host>,
    /// Namespaces created so far (also when `create` failed half-way), deleted on drop.
    created: Vec<String>,
    /// Released (as a field, after `Drop::drop` deleted the namespaces) last.
    subnet: Subnet,
}

/// One host: a network namespace with an address on the bridge and `lo` up.
pub struct Host {
    index: usize,
    name: String,
    ip: Ipv4Addr,
    /// Processes started through [`Host::spawn`]: pid and start time (so that a pid reused by
    /// another process after the child was reaped is never killed).
    spawned: Mutex<Vec<(u32, Option<u64>)>>,
}

impl Hosts {
    /// Builds `n` hosts (1 ≤ n ≤ 254) on a fresh bridge in a subnet of their own. Fails, naming
    /// the cause, when not run as root, when `ip` is missing, or when a step of the set-up fails
    /// (what was built by then is removed again).
    pub fn create(n: usize) -> Result<Hosts> {
        if n == 0 || n > MAX_HOSTS {
            bail!("floe-testkit netns: cannot build {n} hosts: between 1 and {MAX_HOSTS} fit in one /24");
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        preflight(euid, "ip")?;
        sweep_stale()?;
        let subnet = Subnet::claim()?;
        let prefix = subnet.prefix();
        let mut hosts = Hosts {
            switch: format!("{prefix}-sw"),
            prefix,
            hosts: Vec::new(),
            created: Vec::new(),
            subnet,
        };
        // On an error below, dropping `hosts` removes what was built so far.
        hosts.build(n)?;
        Ok(hosts)
    }

    fn build(&mut self, n: usize) -> Result<()> {
        let sw = self.switch.clone();
        ip(&["netns", "add", &sw])?;
        self.created.push(sw.clone());
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        for i in 0..n {
            let name = format!("{}-h{}", self.prefix, i + 1);
            ip(&["netns", "add", &name])?;
            self.created.push(name.clone());
            let port = switch_port(i);
            // Created inside the switch namespace with the peer moved straight into the host,
            // so the interface names never exist in the root namespace (no clash between runs).
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &name,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            // `n` ≤ MAX_HOSTS = 254, checked in `create`.
            let ip_addr = self.subnet.address((i + 1) as u8);
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
            self.hosts.push(Host {
                index: i,
                name,
                ip: ip_addr,
                spawned: Mutex::new(Vec::new()),
            });
        }
        Ok(())
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Always false: an instance has at least one host.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i` (0-based; its name ends in `h<i + 1>` and its address in `.<i + 1>`). Panics
    /// when `i >= len()`, like indexing.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Every host, in index order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The network address of this instance's /24 (e.g. `198.18.7.0`).
    pub fn subnet(&self) -> Ipv4Addr {
        self.subnet.network()
    }

    /// Name of the switch namespace (holding `br0` and the `sw-h<n>` ports).
    pub fn switch_namespace(&self) -> &str {
        &self.switch
    }

    /// Unplugs host `i`: its port on the switch goes down, so its packets vanish without a
    /// reset, as on power loss or a partition. Its processes keep running.
    pub fn link_down(&self, i: usize) -> Result<()> {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &switch_port(self.host(i).index),
            "down",
        ])
    }

    /// Plugs host `i` back in (undoes [`Hosts::link_down`]).
    pub fn link_up(&self, i: usize) -> Result<()> {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &switch_port(self.host(i).index),
            "up",
        ])
    }

    /// Crashes host `i`: SIGKILLs every process in its namespace, repeating until none is left
    /// (a process may fork while being killed), within 10 s. Returns how many were killed.
    pub fn kill_all(&self, i: usize) -> Result<usize> {
        kill_namespace(&self.host(i).name)
    }

    /// Hangs host `i`: SIGSTOPs every process in its namespace. Returns how many.
    pub fn freeze(&self, i: usize) -> Result<usize> {
        signal_all(&self.host(i).name, libc::SIGSTOP)
    }

    /// Resumes host `i` after [`Hosts::freeze`]: SIGCONTs every process in its namespace.
    pub fn thaw(&self, i: usize) -> Result<usize> {
        signal_all(&self.host(i).name, libc::SIGCONT)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Kill first: `ip netns del` only removes the name, and a namespace with processes
        // left in it would live on unseen.
        for host in &self.hosts {
            host.kill_spawned();
        }
        for name in self.created.iter().rev() {
            if let Err(e) = kill_namespace(name) {
                eprintln!("floe-testkit netns: killing the processes of {name}: {e:#}");
            }
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("floe-testkit netns: deleting {name}: {e:#}");
            }
        }
    }
}

impl Host {
    /// 0-based index of this host.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its network namespace's name (for `ip netns exec NAME …` / `ip -n NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address on the bridge.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ip():port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, port))
    }

    /// A command running `program` on this host (`ip netns exec NAME program`); add its
    /// arguments and environment as usual. `ip netns exec` execs the program in place, so the
    /// child's PID is the program's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Spawns a command made by [`Host::command`], records its PID and returns once the
    /// process is inside the namespace (or has already exited), so that [`Hosts::kill_all`],
    /// [`Hosts::freeze`] and [`Host::pids`] right after see it. The caller owns the child (and
    /// should wait for it); dropping the [`Hosts`] kills it if it still runs.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child> {
        let ns = Path::new(NETNS_DIR).join(&self.name);
        let target = fs::metadata(&ns).with_context(|| format!("reading {}", ns.display()))?;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {cmd:?} on {}", self.name))?;
        let pid = child.id() as i32;
        self.spawned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((child.id(), proc_stat(pid).map(|(_, start)| start)));
        // `ip netns exec` enters the namespace, then execs the program: until then the child
        // still runs in this process's namespace.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if same_namespace(pid, &target) || matches!(proc_stat(pid), None | Some(('Z', _))) {
                return Ok(child);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{cmd:?} did not enter namespace {} within 10 s (was it made by Host::command?)",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// PIDs started through [`Host::spawn`] (running or not).
    pub fn spawned(&self) -> Vec<u32> {
        let spawned = self.spawned.lock().unwrap_or_else(|e| e.into_inner());
        spawned.iter().map(|&(pid, _)| pid).collect()
    }

    /// SIGKILLs the processes started through [`Host::spawn`] that still run (same pid and
    /// start time), wherever they are.
    fn kill_spawned(&self) {
        let spawned = self.spawned.lock().unwrap_or_else(|e| e.into_inner());
        for &(pid, start) in spawned.iter() {
            let pid = pid as i32;
            if let (Some(start), Some((state, now))) = (start, proc_stat(pid)) {
                if now == start && state != 'Z' {
                    // SAFETY: kill has no memory preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }

    /// PIDs of every live process in this host's namespace (`ip netns pids`; zombies, which
    /// have left their namespace, are not listed).
    pub fn pids(&self) -> Result<Vec<i32>> {
        namespace_pids(&self.name)
    }

    /// Runs `f` on a thread inside this host's namespace and returns its result: sockets it
    /// opens belong to the host (and stay there when handed back to other threads), so a test
    /// can be a client or server on a host without a helper process. A panic in `f` is
    /// re-raised here.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let path = Path::new(NETNS_DIR).join(&self.name);
        let ns = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || -> io::Result<R> {
                // SAFETY: `ns` is an open namespace file; CLONE_NEWNET moves only this thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r.with_context(|| format!("entering namespace {}", self.name)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

/// The switch-side interface of host `i` (0-based), `sw-h<i + 1>` (interface names are limited
/// to 15 bytes).
fn switch_port(i: usize) -> String {
    format!("sw-h{}", i + 1)
}

/// Checks the prerequisites: root (namespaces need CAP_SYS_ADMIN) and an `ip` that runs.
fn preflight(euid: u32, ip_program: &str) -> Result<()> {
    if euid != 0 {
        bail!(
            "floe-testkit netns: network-namespace hosts need root (running as uid {euid}); \
             run the multi-host tests as root"
        );
    }
    match Command::new(ip_program)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            bail!("floe-testkit netns: `{ip_program} -V` failed ({s}); iproute2's `ip` is needed")
        }
        Err(e) => bail!(
            "floe-testkit netns: cannot run `{ip_program}` ({e}); install iproute2 \
             (`apt-get install iproute2`) for the multi-host tests"
        ),
    }
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = ip_output(args)?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ip_output(args: &[&str]) -> Result<Output> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `ip {}`", args.join(" ")))
}

/// Live PIDs in namespace `name`.
fn namespace_pids(name: &str) -> Result<Vec<i32>> {
    let out = ip_output(&["netns", "pids", name])?;
    if !out.status.success() {
        bail!(
            "`ip netns pids {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .map(|p| {
            p.parse::<i32>()
                .map_err(|e| anyhow!("`ip netns pids {name}` printed {p:?}: {e}"))
        })
        .collect()
}

fn signal_all(name: &str, signal: libc::c_int) -> Result<usize> {
    let pids = namespace_pids(name)?;
    for &pid in &pids {
        // SAFETY: kill has no memory preconditions; a PID that exited meanwhile gives ESRCH.
        unsafe { libc::kill(pid, signal) };
    }
    Ok(pids.len())
}

fn kill_namespace(name: &str) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut killed = 0;
    loop {
        let n = signal_all(name, libc::SIGKILL)?;
        if n == 0 {
            return Ok(killed);
        }
        killed += n;
        if Instant::now() > deadline {
            bail!("processes still alive in namespace {name} 10 s after SIGKILL");
        }
        // SIGKILL is asynchronous; give the kernel a moment to tear the processes down.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// State and start time of process `pid` (`/proc/<pid>/stat` fields 3 and 22), None when
/// there is no such process.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: comm may hold spaces and parentheses, so split after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether process `pid` runs in the network namespace whose file has metadata `target`.
fn same_namespace(pid: i32, target: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}/ns/net"))
        .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
}

/// Whether process `pid` exists.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe {
        libc::kill(pid, 0) == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// Claims a free /24: creates `LOCK_DIR/<s>` create-only, holding `pid`.
fn claim_subnet(pid: u32) -> Result<(u32, PathBuf)> {
    fs::create_dir_all(LOCK_DIR).with_context(|| format!("creating {LOCK_DIR}"))?;
    // Start at a point depending on pid and instance, so concurrent runs rarely probe the same.
    let start = pid
        .wrapping_mul(7)
        .wrapping_add(CREATED.fetch_add(1, Ordering::Relaxed));
    for k in 0..SUBNETS - 1 {
        let s = 1 + (start.wrapping_add(k)) % (SUBNETS - 1);
        let path = Path::new(LOCK_DIR).join(s.to_string());
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                writeln!(f, "{pid}").with_context(|| format!("writing {}", path.display()))?;
                return Ok((s, path));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    bail!(
        "floe-testkit netns: all {} subnets of 198.18.0.0/15 are claimed (see {LOCK_DIR})",
        SUBNETS - 1
    )
}

/// The pid in a namespace name `floe-<pid>-<s>-(h<n>|sw)`, or None for other names (such as
/// `scripts/netns-cluster.sh`'s `floe-cluster-*`, which are never swept).
fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("floe-")?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?.parse::<i32>().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    let tail = parts.next()?;
    let host = tail == "sw"
        || tail
            .strip_prefix('h')
            .is_some_and(|i| i.parse::<u32>().is_ok());
    host.then_some(pid)
}

/// Removes namespaces (killing their processes first) and subnet claims left behind by test
/// processes that no longer run. Returns the names of the namespaces removed.
pub fn sweep_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let out = ip_output(&["netns", "list"])?;
    if !out.status.success() {
        bail!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Lines look like `name` or `name (id: 3)`.
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(name) else { continue };
        if alive(pid) {
            continue;
        }
        let swept = kill_namespace(name).and_then(|_| ip(&["netns", "del", name]));
        match swept {
            Ok(()) => removed.push(name.to_string()),
            // Another test process swept it at the same time.
            Err(_) if !Path::new(NETNS_DIR).join(name).exists() => {}
            Err(e) => return Err(e.context(format!("sweeping stale namespace {name}"))),
        }
    }
    if let Ok(entries) = fs::read_dir(LOCK_DIR) {
        for entry in entries.flatten() {
            let pid = fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            // A claim with no pid yet is being written right now; leave it.
            if pid.is_some_and(|p| !alive(p)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_names_the_missing_prerequisite() {
        let not_root = preflight(1000, "ip").unwrap_err().to_string();
        assert!(
            not_root.contains("need root") && not_root.contains("uid 1000"),
            "{not_root}"
        );
        let no_ip = preflight(0, "/nonexistent/ip").unwrap_err().to_string();
        assert!(
            no_ip.contains("cannot run `/nonexistent/ip`") && no_ip.contains("iproute2"),
            "{no_ip}"
        );
    }

    #[test]
    fn only_test_run_names_have_an_owner() {
        assert_eq!(owner_pid("floe-123-7-h0"), Some(123));
        assert_eq!(owner_pid("floe-123-7-h12"), Some(123));
        assert_eq!(owner_pid("floe-123-7-sw"), Some(123));
        assert_eq!(owner_pid("floe-cluster-h1"), None);
        assert_eq!(owner_pid("floe-cluster-sw"), None);
        assert_eq!(owner_pid("floe-123-7-x"), None);
        assert_eq!(owner_pid("floe-h1"), None);
        assert_eq!(owner_pid("other-1-2-h0"), None);
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        assert!(switch_port(MAX_HOSTS - 1).len() <= 15);
    }
}
