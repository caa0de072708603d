//! `cargo xtask demo`: the SDK at work on the example server, end to end.
//!
//! Builds `http_server` and `usdt` (release), starts the server on a free
//! loopback port, lists its probes with `usdt list --pid`, then runs three
//! traces of it while a built-in client sends requests: every `http` probe
//! streamed, responses counted by status with a histogram of their sizes,
//! and the latency from request start to done, the last two aggregated in
//! the kernel; then `usdt serve` exports those aggregations and one scrape
//! of it shows what Prometheus would read. Each step prints the command it
//! runs, as a user would type it. Needs root (the traces attach BPF programs); stops the server when
//! done.

use crate::http::{self, Client, Server};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `cargo xtask demo`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("demo: unknown argument `{arg}`"));
    }
    http::require_root("demo")?;
    let binaries = http::build()?;
    let server = Server::start(&binaries.server)?;
    let pid = server.pid().to_string();
    let address = server.address.clone();

    heading("Start the instrumented server");
    println!("$ http_server --listen 127.0.0.1:0");
    println!("{}", server.banner);

    heading("Its probes, as the running process maps them");
    usdt(&binaries.usdt, &["list", "--pid", &pid], || Ok(()))?;

    heading("Trace every http probe while a client sends requests");
    usdt(
        &binaries.usdt,
        &["trace", "--pid", &pid, "--duration", "1.5", "http:*"],
        || a_few_requests(&address),
    )?;

    heading("Count responses by status and histogram their sizes, in the kernel");
    usdt(
        &binaries.usdt,
        &[
            "trace",
            "--pid",
            &pid,
            "--duration",
            "2",
            "--hits",
            "--by",
            "status",
            "--hist",
            "bytes",
            "http:request_done",
        ],
        || load(&address),
    )?;

    heading("Latency from request start to done, paired by request id");
    usdt(
        &binaries.usdt,
        &[
            "trace",
            "--pid",
            &pid,
            "--duration",
            "2",
            "--latency",
            "http:request_start",
            "http:request_done",
            "--key",
            "request_id",
        ],
        || load(&address),
    )?;
    heading("Export the same aggregations to Prometheus with usdt serve");
    serve(&binaries, &address)?;
    drop(server);
    println!();
    println!("(the server has been stopped)");
    Ok(())
}

fn heading(text: &str) {
    println!();
    println!("## {text}");
    println!();
}

/// Runs `usdt ARGS` with its output on ours; once it reports that it is
/// tracing (or at once for `list`), runs `during`.
fn usdt(
    binary: &Path,
    args: &[&str],
    during: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    println!("$ {}", http::shown(args));
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut during = Some(during);
    if args.first() != Some(&"trace")
        && let Some(during) = during.take()
    {
        during()?;
    }
    let mut failure = None;
    for line in stderr.lines() {
        let line = line.map_err(|e| format!("cannot read usdt's output: {e}"))?;
        println!("{line}");
        if line.starts_with("usdt: tracing ")
            && let Some(during) = during.take()
            && let Err(e) = during()
        {
            failure = Some(e);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for usdt: {e}"))?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    if !status.success() {
        return Err(format!("`{}` failed ({status})", http::shown(args)));
    }
    Ok(())
}

/// A few requests on one keep-alive connection, and a malformed one.
fn a_few_requests(address: &str) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("request to the server failed: {e}");
    let mut client = Client::connect(address).map_err(fail)?;
    client.send("GET", "/hello/usdt", b"").map_err(fail)?;
    client.send("GET", "/bytes/1234", b"").map_err(fail)?;
    client.send("POST", "/echo", b"ping").map_err(fail)?;
    client.send("GET", "/status/404", b"").map_err(fail)?;
    drop(client);
    // A request line without a version: the server answers 400 and fires
    // its error probe.
    let mut client = Client::connect(address).map_err(fail)?;
    client.send_raw(b"BROKEN\r\n\r\n").map_err(fail)?;
    Ok(())
}

/// 400 requests from four connections: sizes from 10 bytes to 100 KB,
/// some errors, some short sleeps.
fn load(address: &str) -> Result<(), String> {
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let address = address.to_owned();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut client = Client::connect(&address)?;
                for i in 0..100 {
                    let path = match (i + thread) % 10 {
                        0 => "/bytes/10".to_owned(),
                        1 | 2 => "/bytes/100".to_owned(),
                        3..=5 => "/bytes/1000".to_owned(),
                        6 => "/bytes/100000".to_owned(),
                        7 => "/status/404".to_owned(),
                        8 => format!("/sleep/{}", 1 + i % 5),
                        _ => "/hello/usdt".to_owned(),
                    };
                    client.send("GET", &path, b"")?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| "a client thread panicked".to_owned())?
            .map_err(|e| format!("request to the server failed: {e}"))?;
    }
    Ok(())
}

/// `usdt serve` on the example server: requests by status, a histogram of
/// response sizes and the request latency, served on a free loopback port;
/// after some load, one scrape, of which a few lines are printed, then
/// SIGTERM.
fn serve(binaries: &http::Binaries, address: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("usdt-demo-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("export.toml");
    let server = binaries.server.display();
    let text = format!(
        r#"[[metric]]
name = "http_requests"
help = "Requests by status"
kind = "count"
probe = "{server}:http:request_done"
by = ["status"]

[[metric]]
name = "http_response_bytes"
kind = "histogram"
probe = "{server}:http:request_done"
value = "bytes"

[[metric]]
name = "http_request_duration"
kind = "latency"
start = "{server}:http:request_start"
end = "{server}:http:request_done"
key = "request_id"
"#
    );
    std::fs::write(&config, &text)
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    println!("$ cat export.toml");
    print!("{text}");
    let listen = http::free_address()?;
    let config_arg = config.display().to_string();
    let args = ["serve", "--config", &config_arg, "--listen", &listen];
    println!("$ usdt serve --config export.toml --listen {listen}");
    let mut child = Command::new(&binaries.usdt)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binaries.usdt.display()))?;
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.starts_with("usdt: serving ") {
        line.clear();
        if stderr.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            let _ = child.wait();
            return Err("usdt serve stopped before serving".into());
        }
        print!("{line}");
    }
    let scraped = load(address).and_then(|()| http::scrape(&listen));
    let stopped = crate::deps::run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    print!("{rest}");
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for usdt: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    let exposition = scraped?;
    stopped?;
    if !status.success() {
        return Err(format!("`usdt serve` failed ({status})"));
    }
    println!("$ curl -s http://{listen}/metrics | grep -E '^http_' | ...");
    let shown = exposition.lines().filter(|line| {
        line.starts_with("http_requests_total")
            || line.starts_with("http_response_bytes_sum")
            || line.starts_with("http_response_bytes_count")
            || line.starts_with("http_request_duration_seconds_sum")
            || line.starts_with("http_request_duration_seconds_count")
            || (line.starts_with("http_request_duration_seconds_bucket") && !line.ends_with(" 0"))
    });
    for line in shown.take(20) {
        println!("{line}");
    }
    Ok(())
}
