//! `http_server [--listen ADDR] [--max-connections N] [--idle-timeout SECS]
//! [--request-timeout SECS]`: serve HTTP/1.1 with USDT probes.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: http_server [--listen ADDR] [--max-connections N]
                   [--idle-timeout SECS] [--request-timeout SECS]

Serves HTTP/1.1 on ADDR (default 127.0.0.1:8080), each connection on its
own thread, up to N at once (default 256; more are answered 503). A
connection waits up to --idle-timeout (default 5) for its next request; a
request must arrive within --request-timeout (default 10) of its first
byte, else 408. Routes: /, /hello/NAME, /bytes/N, /sleep/MS, /status/CODE,
POST /echo.";

/// A positive number of seconds, possibly fractional.
fn seconds(option: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{option} takes a positive number of seconds, not `{value}`"))
}

fn main() -> ExitCode {
    let mut listen = String::from("127.0.0.1:8080");
    let mut config = http_server::Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let parsed = match arg.as_str() {
            "--listen" => value("--listen").map(|v| listen = v),
            "--max-connections" => value("--max-connections").and_then(|v| {
                v.parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .map(|n| config.max_connections = n)
                    .ok_or_else(|| format!("--max-connections takes a positive number, not `{v}`"))
            }),
            "--idle-timeout" => value("--idle-timeout")
                .and_then(|v| seconds("--idle-timeout", &v))
                .map(|d| config.idle_timeout = d),
            "--request-timeout" => value("--request-timeout")
                .and_then(|v| seconds("--request-timeout", &v))
                .map(|d| config.request_timeout = d),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument `{other}`")),
        };
        if let Err(message) = parsed {
            eprintln!("http_server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("http_server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    println!("listening on http://{address} (pid {})", std::process::id());
    match http_server::serve(listener, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_server: {e}");
            ExitCode::FAILURE
        }
    }
}
