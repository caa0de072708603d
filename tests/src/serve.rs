//! `usdt serve` and a real Prometheus: the daemon started on a free port
//! with a configuration file, requests sent to it, and a Prometheus server
//! (Debian's `prometheus`) scraping it every second and queried through its
//! HTTP API.

use crate::Guard;
use crate::cli::{assert_failure, run_usdt, usdt};
use crate::trace::{NEEDS_COOKIES, has_cookies};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// Sends the raw request `request` to `address` and returns the response's
/// status and body (the server closes the connection after it).
pub fn http_raw(address: &str, request: &[u8]) -> (u16, String) {
    let mut stream =
        TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a timeout");
    stream.write_all(request).expect("send the request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET path` on `address` (HTTP/1.0: no chunked body), with an `Accept`
/// header if given.
pub fn http_get(address: &str, path: &str, accept: Option<&str>) -> (u16, String) {
    let accept = accept
        .map(|accept| format!("Accept: {accept}\r\n"))
        .unwrap_or_default();
    http_raw(
        address,
        format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n{accept}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// `text` percent-encoded for a URL's query string.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether the kernel has BPF cookies; if not (before 5.15), checks that
/// `usdt serve --config CONFIG`, whose probes are PIE files traced by path,
/// is refused with the one line naming the feature and `what`, and exit
/// status 1.
pub fn cookies_or_refused(config: &Path, what: &str) -> bool {
    if has_cookies() {
        return true;
    }
    let config = config.to_str().expect("a UTF-8 path");
    let output = run_usdt(&["serve", "--config", config, "--listen", "127.0.0.1:0"]);
    let line = assert_failure(&output, 1, NEEDS_COOKIES);
    assert!(line.contains(what), "expected `{what}` in: {line}");
    false
}

/// A running `usdt serve`, killed when dropped; its standard error is
/// collected line by line.
pub struct Serve {
    child: Guard,
    /// The address it serves.
    pub address: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `usdt serve --config CONFIG --listen 127.0.0.1:PORT` on a free
    /// port and waits (up to 60 s) until it serves.
    pub fn start(config: &Path) -> Serve {
        let address = format!("127.0.0.1:{}", free_port());
        let mut child = Guard::spawn(
            usdt()
                .args(["serve", "--config"])
                .arg(config)
                .args(["--listen", &address]),
        );
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        let pipe = child.0.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let serve = Serve {
            child,
            address,
            stderr,
        };
        serve.wait_for_stderr("usdt: serving ", Duration::from_secs(60));
        serve
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a line of standard error contains `text`; returns it.
    pub fn wait_for_stderr(&self, text: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.stderr().into_iter().find(|l| l.contains(text)) {
                return line;
            }
            assert!(
                start.elapsed() < timeout,
                "no `{text}` from usdt serve in {timeout:?}: {:?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /metrics` in the Prometheus text format: the body.
    pub fn metrics(&self) -> String {
        let (status, body) = http_get(&self.address, "/metrics", None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, signal) }, 0);
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.0.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "usdt serve did not stop on SIGTERM: {:?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The value of the sample `sample` (name and labels exactly as written)
/// in an exposition, if it is there.
pub fn sample(exposition: &str, sample: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// A Prometheus server in a directory of its own, scraping one target
/// every second; killed when dropped.
pub struct Prometheus {
    _child: Guard,
    /// Its own address (HTTP API).
    pub address: String,
    /// Its directory (configuration, log).
    pub dir: PathBuf,
    /// Its storage, removed when dropped.
    storage: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `target` (`host:port`) every
    /// second as job `usdt`, and waits (up to 180 s) until it is ready.
    pub fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: usdt\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let address = format!("127.0.0.1:{}", free_port());
        // Storage on the machine's temporary directory: in the old kernels'
        // virtual machines the scratch directory is the host's file system
        // shared into the guest, where the TSDB does not start.
        let storage = std::env::temp_dir().join(format!(
            "usdt-prometheus-{}-{}",
            std::process::id(),
            address.rsplit(':').next().unwrap_or_default()
        ));
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("create the log");
        let child = Guard(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={address}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus"),
        );
        let prometheus = Prometheus {
            _child: child,
            address,
            dir: dir.to_path_buf(),
            storage,
        };
        let start = Instant::now();
        // Minutes in an emulated virtual machine (the old kernels' runs).
        while TcpStream::connect(&prometheus.address).is_err()
            || http_get(&prometheus.address, "/-/ready", None).0 != 200
        {
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "prometheus not ready: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The instant vector of the PromQL expression `query`: each series'
    /// labels (without `__name__`, `job` and `instance`, as `k=v` joined
    /// by `,`, sorted) and value.
    pub fn query(&self, query: &str) -> Vec<(String, f64)> {
        let (status, body) = http_get(
            &self.address,
            &format!("/api/v1/query?query={}", url_encode(query)),
            None,
        );
        assert_eq!(status, 200, "{query}: {body}");
        let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON reply");
        let mut series: Vec<(String, f64)> = reply["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {body}"))
            .iter()
            .map(|s| {
                let mut labels: Vec<String> = s["metric"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .filter(|(k, _)| !["__name__", "job", "instance"].contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                labels.sort();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("a value");
                (labels.join(","), value)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        series
    }

    /// Waits (up to 30 s) until `query` returns exactly `expected`; returns
    /// the last answer either way, for the caller to compare.
    pub fn wait_for(&self, query: &str, expected: &[(&str, f64)]) -> Vec<(String, f64)> {
        let start = Instant::now();
        loop {
            let answer = self.query(query);
            let same = answer.len() == expected.len()
                && answer
                    .iter()
                    .zip(expected)
                    .all(|((labels, value), (want_labels, want))| {
                        labels == want_labels && (value - want).abs() < 1e-9
                    });
            if same || start.elapsed() > Duration::from_secs(30) {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
