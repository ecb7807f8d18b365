//! `floe_testkit::netns` for real: namespaces on a bridge reach each other and nothing else,
//! unplugging a host makes Floe's sockets fail within their user timeout, and every process
//! and namespace is gone after a host is killed or the hosts are dropped. Needs root and `ip`
//! (the tests fail, naming which, without them).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use floe_testkit::netns::{sweep_stale, Host, Hosts, Subnet};

const ECHO: &str = env!("CARGO_BIN_EXE_floe-testkit-echo");

/// Kills the child by PID when the test ends, also on panic.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the echo server on `host`, port 0, and returns it with the address it bound.
fn echo_server(host: &Host) -> Result<(Guard, SocketAddr)> {
    let mut cmd = host.command(ECHO);
    cmd.args(["listen", &host.addr(0).to_string()])
        .stdout(Stdio::piped());
    let mut child = Guard(host.spawn(&mut cmd)?);
    let stdout = child.0.stdout.take().context("echo stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .with_context(|| format!("echo printed {line:?}"))?;
    Ok((child, addr.parse()?))
}

fn namespaces() -> Result<String> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    Ok(String::from_utf8(out.stdout)?)
}

fn round_trip(conn: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
    conn.write_all(text)?;
    let mut buf = vec![0; text.len()];
    conn.read_exact(&mut buf)?;
    Ok(buf)
}

#[test]
fn two_hosts_talk_over_tcp_and_the_root_namespace_cannot_reach_them() -> Result<()> {
    let hosts = Hosts::create(2)?;
    let (h0, h1) = (hosts.host(0), hosts.host(1));
    assert_eq!(h0.ip().octets()[..3], h1.ip().octets()[..3], "one /24");
    assert_eq!(h0.ip().octets()[3], 1);
    assert_eq!(h1.ip().octets()[3], 2);
    assert!(
        h0.name().ends_with("-h1") && h1.name().ends_with("-h2"),
        "{} {}",
        h0.name(),
        h1.name()
    );
    let (_server, addr) = echo_server(h1)?;
    assert_eq!(addr.ip(), h1.ip());

    // A process on host 0 reaches host 1.
    let out = h0
        .command(ECHO)
        .args(["send", &addr.to_string(), "hello from h0"])
        .output()?;
    assert!(
        out.status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout)?, "hello from h0");

    // So does a socket opened on host 0 by this test.
    let reply = h0.run(|| -> std::io::Result<Vec<u8>> {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        round_trip(&mut conn, b"socket on h0")
    })??;
    assert_eq!(reply, b"socket on h0");

    // Host 0 has its own loopback, up.
    let lo = h0.run(|| std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr()))??;
    assert!(lo?.ip().is_loopback());

    // The root namespace has no veth into the bridge. (Its default route may lead to a
    // gateway that answers connections to any address on some ports, so "unreachable" is
    // judged by whether our server echoes, not by whether a connect succeeds.)
    let from_root = (|| -> std::io::Result<Vec<u8>> {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        round_trip(&mut conn, b"from the root namespace")
    })();
    assert!(
        !matches!(&from_root, Ok(reply) if reply == b"from the root namespace"),
        "the root namespace reached the echo server at {addr}"
    );
    Ok(())
}

#[test]
fn an_unplugged_host_times_out_floe_sockets_and_plugging_it_back_heals() -> Result<()> {
    let hosts = Hosts::create(2)?;
    let (_server, addr) = echo_server(hosts.host(1))?;
    let timeout = Duration::from_secs(2);
    let mut conn = hosts.host(0).run(|| -> std::io::Result<TcpStream> {
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        floe::wire::configure_socket(&conn, timeout)?;
        Ok(conn)
    })??;
    assert_eq!(round_trip(&mut conn, b"before")?, b"before");

    hosts.link_down(1)?;
    // A guard so a broken user timeout fails the test instead of hanging it.
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let start = Instant::now();
    let err = round_trip(&mut conn, b"during")
        .expect_err("a round trip through an unplugged link succeeded");
    let took = start.elapsed();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ETIMEDOUT),
        "{err} after {took:?}"
    );
    assert!(
        took >= timeout - Duration::from_millis(100),
        "failed before the user timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} for a {timeout:?} user timeout"
    );

    // A new connection cannot be made either while the link is down.
    let connect = hosts
        .host(0)
        .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(1)))?;
    let err = connect.expect_err("connected through an unplugged link");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");

    hosts.link_up(1)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let attempt = hosts.host(0).run(|| -> std::io::Result<Vec<u8>> {
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            round_trip(&mut conn, b"after")
        })?;
        match attempt {
            Ok(reply) => break reply,
            Err(e) if Instant::now() > deadline => {
                bail!("host 1 unreachable 10 s after link up: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(reply, b"after");
    Ok(())
}

fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S …`: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out after 10 s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn freeze_stops_every_process_on_a_host_and_thaw_resumes_them() -> Result<()> {
    let hosts = Hosts::create(2)?;
    let (server, addr) = echo_server(hosts.host(1))?;
    let pid = server.0.id() as i32;
    assert_eq!(hosts.host(1).spawned(), vec![pid as u32]);
    let mut conn = hosts
        .host(0)
        .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))??;
    conn.set_read_timeout(Some(Duration::from_millis(500)))?;
    assert_eq!(round_trip(&mut conn, b"1")?, b"1");

    assert_eq!(hosts.freeze(1)?, 1);
    wait_for("the echo server to stop", || {
        process_state(pid) == Some('T')
    })?;
    // The kernel still takes the bytes, but a stopped server echoes nothing.
    conn.write_all(b"2")?;
    let mut byte = [0u8; 1];
    let err = conn
        .read_exact(&mut byte)
        .expect_err("a frozen host answered");
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");

    assert_eq!(hosts.thaw(1)?, 1);
    wait_for("the echo server to resume", || {
        process_state(pid).is_some_and(|s| s != 'T')
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.read_exact(&mut byte)?;
    assert_eq!(&byte, b"2");
    Ok(())
}

#[test]
fn kill_all_leaves_no_process_on_the_host() -> Result<()> {
    let hosts = Hosts::create(2)?;
    let host = hosts.host(1);
    let (mut server, _addr) = echo_server(host)?;
    let mut sleeper = Guard(host.spawn(host.command("sleep").arg("1000"))?);
    let mut pids = host.pids()?;
    pids.sort();
    let mut expected = vec![server.0.id() as i32, sleeper.0.id() as i32];
    expected.sort();
    assert_eq!(pids, expected);
    assert!(hosts.host(0).pids()?.is_empty());

    assert_eq!(hosts.kill_all(1)?, 2);
    assert_eq!(host.pids()?, Vec::<i32>::new());
    for child in [&mut server.0, &mut sleeper.0] {
        let status = child.wait()?;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
    assert_eq!(hosts.kill_all(1)?, 0);
    Ok(())
}

#[test]
fn dropping_the_hosts_kills_their_processes_and_deletes_the_namespaces() -> Result<()> {
    let hosts = Hosts::create(3)?;
    let mut names: Vec<String> = hosts.hosts().iter().map(|h| h.name().to_string()).collect();
    names.push(hosts.switch_namespace().to_string());
    let listed = namespaces()?;
    for name in &names {
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} not in {listed}"
        );
    }
    let host = hosts.host(2);
    let mut sleeper = host.spawn(host.command("sleep").arg("1000"))?;
    let pid = sleeper.id() as i32;
    // A frozen process is killed too (SIGKILL needs no SIGCONT).
    assert_eq!(hosts.freeze(2)?, 1);
    wait_for("the sleeper to stop", || process_state(pid) == Some('T'))?;

    drop(hosts);
    let status = sleeper.wait()?;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let listed = namespaces()?;
    for name in &names {
        assert!(!listed.contains(name.as_str()), "{name} still in {listed}");
    }
    assert_eq!(process_state(pid), None);
    Ok(())
}

#[test]
fn dropping_on_panic_cleans_up_too() -> Result<()> {
    let names = std::panic::catch_unwind(|| {
        let hosts = Hosts::create(1).expect("hosts");
        let name = hosts.host(0).name().to_string();
        let names = vec![name, hosts.switch_namespace().to_string()];
        std::panic::panic_any(names);
    })
    .expect_err("the closure panics");
    let names = names.downcast::<Vec<String>>().expect("the names");
    let listed = namespaces()?;
    for name in names.iter() {
        assert!(!listed.contains(name.as_str()), "{name} still in {listed}");
    }
    Ok(())
}

#[test]
fn concurrent_instances_get_their_own_subnets_and_names() -> Result<()> {
    let a = Hosts::create(1)?;
    let b = Hosts::create(1)?;
    assert_ne!(a.subnet(), b.subnet());
    assert_ne!(a.host(0).name(), b.host(0).name());
    for h in [a.host(0), b.host(0)] {
        let [o0, o1, _, _] = h.ip().octets();
        assert!(
            o0 == 198 && (o1 == 18 || o1 == 19),
            "{} outside 198.18.0.0/15",
            h.ip()
        );
        assert!(h.name().len() < 32);
    }
    // Same switch-side names in both, yet no clash: they live in different namespaces.
    a.link_down(0)?;
    b.link_down(0)?;
    Ok(())
}

#[test]
fn namespaces_of_dead_test_runs_are_swept() -> Result<()> {
    // A PID that surely no longer runs: a child that exited and was reaped.
    let mut child = Command::new("true").spawn()?;
    let dead = child.id();
    child.wait()?;
    let stale = [format!("floe-{dead}-999-h0"), format!("floe-{dead}-999-sw")];
    let survivor = format!("floe-{}-998-h0", std::process::id());
    for name in stale.iter().chain([&survivor]) {
        let st = Command::new("ip").args(["netns", "add", name]).status()?;
        assert!(st.success(), "ip netns add {name}");
    }
    // A process left running in a stale namespace is killed, not left behind.
    let mut orphan = Command::new("ip")
        .args(["netns", "exec", &stale[0], "sleep", "1000"])
        .spawn()?;

    wait_for("the orphan to enter its namespace", || {
        Command::new("ip")
            .args(["netns", "pids", &stale[0]])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    })?;
    // Another test's `Hosts::create` may sweep them first; either way they must be gone.
    let removed = sweep_stale()?;
    let status = orphan.wait()?;
    let listed = namespaces()?;
    let _ = Command::new("ip")
        .args(["netns", "del", &survivor])
        .status();
    for name in &stale {
        assert!(!listed.contains(name.as_str()), "{name} still in {listed}");
    }
    assert!(
        !removed.contains(&survivor),
        "swept a namespace of a live process"
    );
    assert!(listed.contains(&survivor));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    Ok(())
}

/// `scripts/netns-cluster.sh` on a subnet of its own, so it never meets a cluster a user
/// brought up with the defaults; its namespaces carry this process's prefix, so a crashed run
/// is swept.
struct Script {
    subnet: Subnet,
    dir: tempfile::TempDir,
}

impl Script {
    fn run(&self, args: &[&str]) -> Result<std::process::Output> {
        let net = self.subnet.network().to_string();
        let net = net.rsplit_once('.').context("dotted address")?.0;
        Ok(Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/netns-cluster.sh"
        ))
        .args(args)
        .env("FLOE_NETNS_PREFIX", self.subnet.prefix())
        .env("FLOE_NETNS_NET", net)
        .env("FLOE_NETNS_DIR", self.dir.path())
        .stdin(Stdio::null())
        .output()?)
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_cluster_script_builds_the_three_host_layout_with_s3_and_removes_it() -> Result<()> {
    let script = Script {
        subnet: Subnet::claim()?,
        dir: tempfile::tempdir()?,
    };
    let prefix = script.subnet.prefix();
    let (h1, h2, h3) = (
        script.subnet.address(1),
        script.subnet.address(2),
        script.subnet.address(3),
    );

    let out = script.run(&["up", "--hosts", "1"])?;
    assert!(
        !out.status.success(),
        "up with one host and floe: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("--hosts must be at least 2"),
        "{}",
        text(&out)
    );

    let out = script.run(&["up", "--no-floe"])?;
    assert!(out.status.success(), "up --no-floe failed: {}", text(&out));
    let printed = text(&out);
    for (n, ip) in [(1, h1), (2, h2), (3, h3)] {
        assert!(
            printed.contains(&format!("host {n}: {prefix}-h{n}  {ip}")),
            "{printed}"
        );
    }
    assert!(
        printed.contains(&format!("S3: http://{h1}:8014 bucket floe")),
        "{printed}"
    );
    let listed = namespaces()?;
    for ns in ["h1", "h2", "h3", "sw"].map(|s| format!("{prefix}-{s}")) {
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&ns)),
            "{ns} not in {listed}"
        );
    }
    let s3_pid: i32 = std::fs::read_to_string(script.dir.path().join("pids/s3s-fs.pid"))?
        .trim()
        .parse()?;
    assert_eq!(
        process_state(s3_pid).map(|s| s != 'Z'),
        Some(true),
        "s3s-fs not running"
    );

    // `status` lists S3 answering a signed request from the last host.
    let out = script.run(&["status"])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("S3 http://{h1}:8014: answers")),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(&std::fs::read_to_string(
        script.dir.path().join("s3.secret-key")
    )?));

    // `exec N` runs on host N with that host's floe.yaml.
    let out = script.run(&[
        "exec",
        "2",
        "sh",
        "-c",
        "cat \"$FLOE_CONF_DIR/floe.yaml\"; ip -br addr show eth0",
    ])?;
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!("taskmanager.host: {h2}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("jobmanager.rpc.address: {h1}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("s3.endpoint: http://{h1}:8014")),
        "{shown}"
    );
    assert!(shown.contains(&format!("{h2}/24")), "{shown}");

    // Unplugged, host 3 no longer reaches S3; plugged back, it does.
    assert!(script.run(&["link-down", "3"])?.status.success());
    let out = script.run(&["status"])?;
    assert!(
        text(&out).contains("does not answer from host 3"),
        "{}",
        text(&out)
    );
    assert!(script.run(&["link-up", "3"])?.status.success());
    wait_for("S3 to answer host 3 again", || {
        script
            .run(&["status"])
            .is_ok_and(|o| text(&o).contains("answers (bucket"))
    })?;

    let out = script.run(&["up", "--no-floe"])?;
    assert!(
        !out.status.success() && text(&out).contains("already up"),
        "{}",
        text(&out)
    );

    let out = script.run(&["down"])?;
    assert!(out.status.success(), "{}", text(&out));
    let listed = namespaces()?;
    assert!(
        !listed.contains(&format!("{prefix}-")),
        "left behind: {listed}"
    );
    // Dead: gone, or a zombie until the machine's init (its parent once the script exited) reaps it.
    assert!(
        matches!(process_state(s3_pid), None | Some('Z')),
        "s3s-fs outlived down"
    );
    // The data stays.
    assert!(script.dir.path().join("s3/floe").is_dir());
    let out = script.run(&["status"])?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    Ok(())
}
