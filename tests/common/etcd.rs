//! A real etcd cluster on loopback for tests: 1 or 3 members on free ports, each a child process stopped by PID
//! (SIGKILL on drop), data in a temp dir. Election timeouts are short so that a failover takes about a second.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Etcd {
    pub dir: tempfile::TempDir,
    members: Vec<Member>,
    /// With TLS: the CA, and the client certificate and key etcdctl presents (files in `dir`).
    tls: Option<Tls>,
    /// etcdctl's `--user` once authentication is on.
    pub user: Option<String>,
}

/// PEM files made by `Etcd::start_tls` (paths in the cluster's dir).
#[derive(Clone)]
pub struct Tls {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
    /// Where its data lives (default: a directory in the cluster's dir).
    data: Option<std::path::PathBuf>,
}

/// The etcd binary (Debian's etcd-server puts it in /usr/bin).
fn etcd_bin() -> &'static str {
    for candidate in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if std::path::Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("etcd is not installed: scripts/test.sh installs it (Debian package etcd-server)")
}

impl Etcd {
    /// Starts an `n`-member cluster and waits until it has a leader.
    pub fn start(n: usize) -> Etcd {
        Etcd::start_with(n, false)
    }

    /// A cluster whose clients must speak TLS and present a certificate signed by the test CA.
    pub fn start_tls(n: usize) -> Etcd {
        Etcd::start_with(n, true)
    }

    /// Like `start`, with member `i`'s data in `data` (a small file system of the test's, say).
    pub fn start_with_data(n: usize, i: usize, data: std::path::PathBuf) -> Etcd {
        Etcd::start_full(n, false, Some((i, data)))
    }

    fn start_with(n: usize, tls: bool) -> Etcd {
        Etcd::start_full(n, tls, None)
    }

    fn start_full(n: usize, tls: bool, data: Option<(usize, std::path::PathBuf)>) -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = tls.then(|| make_certs(dir.path()));
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 2 * n {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                child: None,
                data: data.as_ref().filter(|(j, _)| *j == i).map(|(_, d)| d.clone()),
            })
            .collect();
        let mut etcd = Etcd { dir, members, tls, user: None };
        for i in 0..n {
            etcd.spawn(i);
        }
        etcd.wait_for_leader(Duration::from_secs(20));
        etcd
    }

    fn spawn(&mut self, i: usize) {
        let cluster: Vec<String> =
            self.members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer)).collect();
        let m = &self.members[i];
        let data = m.data.clone().unwrap_or_else(|| self.dir.path().join(&m.name));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .expect("etcd log");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let mut command = Command::new(etcd_bin());
        if self.tls.is_some() {
            let d = self.dir.path();
            command
                .arg("--cert-file")
                .arg(d.join("server.pem"))
                .arg("--key-file")
                .arg(d.join("server.key"))
                .arg("--trusted-ca-file")
                .arg(d.join("ca.pem"))
                .arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "vpcdns-test", "--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members.iter().map(|m| format!("{scheme}://127.0.0.1:{}", m.client)).collect()
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// A `[store]` section for a vpcdns node named `node` on this cluster.
    pub fn store_section(&self, node: &str) -> String {
        let endpoints: Vec<String> = self.endpoints().iter().map(|e| format!("{e:?}")).collect();
        format!(
            "[store]\nkind = \"etcd\"\nendpoints = [{}]\nnode = \"{node}\"\ntimeout_ms = 1000\n",
            endpoints.join(", ")
        )
    }

    /// etcdctl (API v3) against the members that run.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoints: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("{scheme}://127.0.0.1:{}", m.client))
            .collect();
        let mut command = Command::new("etcdctl");
        if let Some(tls) = &self.tls {
            command.arg("--cacert").arg(&tls.ca).arg("--cert").arg(&tls.cert).arg("--key").arg(&tls.key);
        }
        if let Some(user) = &self.user {
            command.arg(format!("--user={user}"));
        }
        let out = command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(["--command-timeout=3s", "--dial-timeout=1s"])
            .args(args)
            .output()
            .expect("run etcdctl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The cluster's current revision.
    pub fn revision(&self) -> u64 {
        let out = self.ctl(&["endpoint", "status", "--write-out=json"]).expect("endpoint status");
        let v: serde_json::Value = serde_json::from_str(&out).expect("status json");
        v.as_array()
            .and_then(|a| a.iter().filter_map(|m| m["Status"]["header"]["revision"].as_u64()).max())
            .expect("revision")
    }

    /// The index of the member that leads, if one does.
    pub fn leader(&self) -> Option<usize> {
        let out = self.ctl(&["endpoint", "status", "--write-out=json"]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        for status in v.as_array()? {
            let s = &status["Status"];
            if s["leader"].as_u64().is_some() && s["leader"] == s["header"]["member_id"] {
                let endpoint = status["Endpoint"].as_str()?;
                return self.members.iter().position(|m| endpoint.ends_with(&format!(":{}", m.client)));
            }
        }
        None
    }

    pub fn wait_for_leader(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(i) = self.leader() {
                return i;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let logs: Vec<String> = self
            .members
            .iter()
            .map(|m| std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name))).unwrap_or_default())
            .collect();
        panic!("etcd elected no leader within {limit:?}; logs:\n{}", logs.join("\n"))
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP member `i` (a frozen VM, a stalled disk: it holds its connections and answers nothing), or SIGCONT it
    /// again.
    pub fn pause(&self, i: usize, stopped: bool) {
        if let Some(child) = &self.members[i].child {
            let signal = if stopped { nix::sys::signal::Signal::SIGSTOP } else { nix::sys::signal::Signal::SIGCONT };
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
            nix::sys::signal::kill(pid, signal).expect("signal");
        }
    }

    /// Starts member `i` again on its data (after `kill`, or after it exited).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Whether member `i` has ended by itself (etcd exits on a write its disk refuses).
    pub fn exited(&mut self, i: usize) -> bool {
        self.members[i].child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    pub fn members(&self) -> usize {
        self.members.len()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in `dir`.
fn make_certs(dir: &std::path::Path) -> Tls {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl must be installed (scripts/test.sh installs it)");
        assert!(status.success(), "openssl {args:?}");
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[&["req", "-x509"], &ec[..], &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca"]]
            .concat(),
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        .expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, cn) in [("server", "127.0.0.1"), ("client", "vpcdns")] {
        let subject = format!("/CN={cn}");
        let (key, csr, pem, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        openssl(&[&["req"], &ec[..], &["-keyout", &key, "-out", &csr, "-subj", &subject]].concat());
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
    Tls { ca: dir.join("ca.pem"), cert: dir.join("client.pem"), key: dir.join("client.key") }
}
