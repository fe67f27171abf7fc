//! Live-test plumbing shared by the tests that capture on a veth between network namespaces
//! of their own: the preconditions, bounded waits, children that cannot outlive a failed
//! assertion, the namespaces themselves, a child's stderr followed line by line and its JSON
//! log lines picked by message.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, ExitStatus};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why a live test cannot run here, if it cannot: not root, or one of `tools` is missing.
pub fn missing_for_live(tools: &[&str]) -> Option<String> {
    let root = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        return Some("needs root".into());
    }
    for tool in tools {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("needs {tool}"));
        }
    }
    None
}

/// Runs a shell command and panics with its output on failure.
pub fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends the signal `name` (TERM, INT, ...) to the child.
pub fn signal(child: &Child, name: &str) {
    sh(&format!("kill -{name} {}", child.id()));
}

/// Waits for the child until `limit`; kills it (and returns None) when it is still running.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Kills the child on drop unless it was reaped: no process outlives a failed assertion.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Two network namespaces joined by a veth pair: `client` (.1) and `server` (.2) in
/// 10.99.`octet`.0/24, no IPv6, no default route. Everything still running inside is killed
/// and both namespaces are deleted on drop.
pub struct Namespaces {
    pub client: String,
    pub server: String,
    pub server_veth: String,
    pub client_ip: String,
    pub server_ip: String,
}

impl Namespaces {
    pub fn new(test: &str, tag: &str, octet: u8) -> Self {
        let n = Namespaces {
            client: format!("ghl-{test}-a"),
            server: format!("ghl-{test}-b"),
            server_veth: format!("ghl{tag}b"),
            client_ip: format!("10.99.{octet}.1"),
            server_ip: format!("10.99.{octet}.2"),
        };
        n.remove();
        let client_veth = format!("ghl{tag}a");
        sh(&format!(
            "ip netns add {a} && ip netns add {b}",
            a = n.client,
            b = n.server
        ));
        for ns in [&n.client, &n.server] {
            // No IPv6 (no router solicitations or MLD): an idle veth carries nothing at all.
            sh(&format!(
                "ip netns exec {ns} sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
                 net.ipv6.conf.default.disable_ipv6=1 && ip -n {ns} link set lo up"
            ));
        }
        sh(&format!(
            "ip link add {va} netns {a} type veth peer name {vb} netns {b} && \
             ip -n {a} addr add {ia}/24 dev {va} && ip -n {b} addr add {ib}/24 dev {vb} && \
             ip -n {a} link set {va} up && ip -n {b} link set {vb} up",
            va = client_veth,
            vb = n.server_veth,
            a = n.client,
            b = n.server,
            ia = n.client_ip,
            ib = n.server_ip,
        ));
        n
    }

    /// A command run inside one of the namespaces (`ip netns exec` execs, so the child's pid is
    /// the command's own and signals reach it directly).
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    fn remove(&self) {
        for ns in [&self.client, &self.server] {
            let pids = Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).output();
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A child's stderr read line by line on a thread: every line is kept, and each one is also
/// sent, so a test can wait for a particular line with a deadline.
pub struct Lines {
    all: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
    _reader: JoinHandle<()>,
}

impl Lines {
    pub fn follow(stderr: ChildStderr) -> Self {
        let all = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let keep = Arc::clone(&all);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Lines {
            all,
            rx,
            _reader: reader,
        }
    }

    /// The first line (from now on) for which `want` holds, within `limit`.
    pub fn wait_for(&self, limit: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(line) if want(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    pub fn text(&self) -> String {
        self.all.lock().unwrap().join("\n")
    }
}

/// JSON log lines (one object each) whose `message` is `message`.
pub fn logs_with_message(stderr: &str, message: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}
