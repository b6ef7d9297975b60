//! BIND 9 as an authoritative server on a loopback port, standing in for the public internet or an on-premises
//! DNS in tests: given zones, a query log (to count what reached it), stopped by PID on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Named {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Named {
    /// Serves `zones` (origin, master-file text) on 127.0.0.1:`port`, a free port.
    pub fn start(zones: &[(&str, &str)]) -> Named {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = super::free_port();
        let d = dir.path().display().to_string();
        let mut conf = format!(
            "options {{\n directory \"{d}\";\n pid-file \"{d}/named.pid\";\n listen-on port {port} {{ 127.0.0.1; }};\n \
             listen-on-v6 {{ none; }};\n recursion no;\n notify no;\n allow-transfer {{ none; }};\n \
             dnssec-validation no;\n empty-zones-enable no;\n querylog yes;\n}};\ncontrols {{ }};\n"
        );
        for (i, (origin, text)) in zones.iter().enumerate() {
            let file = dir.path().join(format!("z{i}.zone"));
            std::fs::write(&file, text).expect("zone file");
            conf.push_str(&format!("zone \"{origin}\" {{ type primary; file \"{}\"; }};\n", file.display()));
        }
        std::fs::write(dir.path().join("named.conf"), conf).expect("named.conf");
        let child = Command::new("named")
            .args(["-g", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("named.log")).map(Stdio::from).unwrap_or(Stdio::null()))
            .spawn()
            .expect("named must be installed (scripts/test.sh installs bind9)");
        let named = Named { child, dir, port };
        named.wait_ready(zones.first().map_or(".", |z| z.0));
        named
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self, origin: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let out = Command::new("dig")
                .args(["+short", "+time=1", "+tries=1", "-p", &self.port.to_string(), "@127.0.0.1", origin, "SOA"])
                .output();
            if out.is_ok_and(|o| !o.stdout.is_empty()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default();
        panic!("named did not start on port {}; log:\n{log}", self.port);
    }

    /// How many queries for `name` (any case, any type) reached this server.
    pub fn queries_for(&self, name: &str) -> usize {
        // `named -g` logs everything, queries included, to stderr: named.log.
        let log = std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default();
        let needle = format!("query: {} ", name.trim_end_matches('.').to_ascii_lowercase());
        log.lines().filter(|l| l.to_ascii_lowercase().contains(&needle)).count()
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
