//! The example HTTP server and the `usdt` command as the demo and the
//! server benchmark use them: building both, running the server, sending it
//! requests with a small HTTP/1.1 client, scraping `usdt serve`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Fails unless this process runs as root: tracing attaches BPF programs.
pub(crate) fn require_root(command: &str) -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    if euid == "0" {
        Ok(())
    } else {
        Err(format!(
            "{command} attaches BPF programs to the server: run it as root (sudo -E cargo xtask {command})"
        ))
    }
}

/// The built `http_server` and `usdt` executables.
pub(crate) struct Binaries {
    /// The example server.
    pub server: PathBuf,
    /// The `usdt` command.
    pub usdt: PathBuf,
}

/// Builds the server and `usdt` in release mode and finds their paths in
/// cargo's report.
pub(crate) fn build() -> Result<Binaries, String> {
    eprintln!("xtask: building http_server and usdt (release)");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked"])
        .args(["--package", "http_server", "--bin", "http_server"])
        .args(["--package", "usdt-cli", "--bin", "usdt"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build failed ({})", out.status));
    }
    let report = String::from_utf8_lossy(&out.stdout);
    let find = |name: &str| {
        report
            .lines()
            .filter(|l| l.contains(&format!("\"name\":\"{name}\"")))
            .find_map(|l| {
                let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
                let end = l[start..].find('"')?;
                Some(PathBuf::from(&l[start..start + end]))
            })
            .ok_or_else(|| format!("cargo reported no {name} executable"))
    };
    Ok(Binaries {
        server: find("http_server")?,
        usdt: find("usdt")?,
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The example server, running; killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The line it printed on starting.
    pub banner: String,
}

impl Server {
    /// Starts `binary` on a free loopback port.
    pub(crate) fn start(binary: &Path) -> Result<Server, String> {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut banner = String::new();
        let read =
            BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut banner);
        let address = banner
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        match (read, address) {
            (Ok(_), Some(address)) => Ok(Server {
                child,
                address,
                banner: banner.trim_end().to_owned(),
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the server did not start: {banner:?}"))
            }
        }
    }

    /// The server's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 connection to the server, kept alive between requests.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    address: String,
}

impl Client {
    /// Connects to `address`.
    pub(crate) fn connect(address: &str) -> io::Result<Client> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
            address: address.to_owned(),
        })
    }

    /// Sends `method path` (with `body` if any) and reads the response;
    /// returns its status and body length.
    pub(crate) fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> io::Result<(u16, usize)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.address);
        if !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        self.read_response()
    }

    /// Sends raw bytes (a malformed request, say) and reads the response.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> io::Result<(u16, usize)> {
        self.writer.write_all(bytes)?;
        self.read_response()
    }

    fn read_response(&mut self) -> io::Result<(u16, usize)> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("the connection closed inside a response"));
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("bad Content-Length"))?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, length))
    }
}

/// Shows a command line as it would be typed, with the `usdt` binary
/// named `usdt` and arguments with shell characters quoted.
pub(crate) fn shown(args: &[&str]) -> String {
    let mut words = vec!["usdt".to_owned()];
    for arg in args {
        if arg.contains(['*', ' ', '(', ')', '?']) {
            words.push(format!("'{arg}'"));
        } else {
            words.push((*arg).to_owned());
        }
    }
    words.join(" ")
}

/// A loopback address with a port that was free a moment ago.
pub(crate) fn free_address() -> Result<String, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .map_err(|e| format!("no free port: {e}"))
}

/// One `GET /metrics` of `usdt serve` at `listen`: the body.
pub(crate) fn scrape(listen: &str) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("cannot scrape usdt serve: {e}");
    let mut stream = TcpStream::connect(listen).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {listen}\r\n\r\n").as_bytes())
        .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(format!("usdt serve answered: {response}")),
    }
}
