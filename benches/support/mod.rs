//! What the benches share: the release server binary, a server process, CPU time from `/proc`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The secret of the servers the benches start.
pub const SECRET: &str = "BENCH_SECRET";

/// `target/release/openvidu-server`, built if missing.
pub fn server_binary(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("openvidu-server");
    if !bin.exists() {
        eprintln!("{} is missing: cargo build --release -p openvidu-server", bin.display());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "openvidu-server"])
            .current_dir(root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building openvidu-server failed");
    }
    bin
}

/// A server process; killed and reaped on drop.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// Its base URL.
    pub url: String,
    _logs: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Starts `bin` on plain HTTP, port 0, with `env` on top of the defaults.
    pub fn start(bin: &Path, env: &[(&str, &str)]) -> Self {
        let logs = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = Command::new(bin)
            .env("OPENVIDU_SECRET", SECRET)
            .env("OPENVIDU_HTTPS", "false")
            .env("HTTPS_PORT", "0")
            .env("SERVER_ADDRESS", "127.0.0.1")
            .env("DOMAIN_OR_PUBLIC_IP", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logs.reopen().expect("the log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("openvidu-server listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(logs.path()).unwrap_or_default();
                panic!("openvidu-server did not start:\n{log}");
            }
        };
        Self { child, url, _logs: logs }
    }

    /// User + system CPU time of the process so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }
}

/// User + system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, i.e. 12 and 13 after the name.
    let ticks: u64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum()).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
