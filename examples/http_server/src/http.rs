//! HTTP/1.1 message handling: reading requests off a connection and writing
//! responses, with keep-alive, `Content-Length` and chunked request bodies.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// Most headers accepted in one request.
const MAX_HEADERS: usize = 64;

/// How a request's body is framed (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target, e.g. `/hello?name=x`.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header names (as sent) and values.
    pub headers: Vec<(String, String)>,
    /// How the body is framed, checked when the head is read.
    pub framing: Framing,
    /// The body, decoded from `Content-Length` or chunked framing by
    /// [`read_request`] ([`read_head`] leaves it empty).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// The values of every header named `name` (case-insensitive).
    fn header_values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The comma-separated elements of every header named `name`, trimmed,
    /// empty elements left out (RFC 9110 section 5.6.1).
    fn header_list<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .map(|e| e.trim_matches([' ', '\t']))
            .filter(|e| !e.is_empty())
    }

    /// The path part of the target (without the query).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The value of query parameter `name`, if present.
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Whether the connection stays open after this request's response:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has = |option: &str| {
            self.header_list("connection")
                .any(|o| o.eq_ignore_ascii_case(option))
        };
        match self.minor_version {
            0 => has("keep-alive"),
            _ => !has("close"),
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body
    /// (an HTTP/1.1 request with `Expect: 100-continue` and a body; the
    /// expectation is ignored in HTTP/1.0, RFC 9110 section 10.1.1).
    pub fn expects_continue(&self) -> bool {
        self.minor_version == 1
            && self.header("expect").is_some()
            && !matches!(self.framing, Framing::None | Framing::Length(0))
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection cleanly between requests.
    Closed,
    /// A socket error.
    Io(io::Error),
    /// The request is malformed, too large or timed out; answer with this
    /// status and reason, then close the connection.
    Bad(u16, &'static str),
}

impl From<io::Error> for ReadError {
    /// A read timeout inside a request is a 408, the peer closing inside
    /// one a 400; other socket errors stay errors.
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                ReadError::Bad(408, "timed out reading the request")
            }
            io::ErrorKind::UnexpectedEof => {
                ReadError::Bad(400, "connection closed inside the request")
            }
            _ => ReadError::Io(e),
        }
    }
}

/// Reads one whole request (head and body) from `reader`.
pub fn read_request<R: Read>(reader: &mut BufReader<R>) -> Result<Request, ReadError> {
    let mut request = read_head(reader)?;
    request.body = read_body(reader, request.framing)?;
    Ok(request)
}

/// Reads and checks a request head: its syntax, `Host` and body framing.
/// The body is left on `reader` for [`read_body`], so that a server can
/// answer `Expect: 100-continue` in between.
pub fn read_head<R: Read>(reader: &mut BufReader<R>) -> Result<Request, ReadError> {
    let head = read_head_bytes(reader)?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ReadError::Bad(400, "incomplete request head"));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Bad(431, "too many headers"));
        }
        Err(_) => return Err(ReadError::Bad(400, "malformed request head")),
    }
    let mut request = Request {
        method: parsed.method.unwrap_or_default().to_owned(),
        target: parsed.path.unwrap_or_default().to_owned(),
        minor_version: parsed.version.unwrap_or(1),
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        framing: Framing::None,
        body: Vec::new(),
    };
    // RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
    match (request.header_values("host").count(), request.minor_version) {
        (0, 1) => return Err(ReadError::Bad(400, "missing Host header")),
        (2.., _) => return Err(ReadError::Bad(400, "more than one Host header")),
        _ => {}
    }
    if let Some(expect) = request.header("expect")
        && !expect.trim().eq_ignore_ascii_case("100-continue")
    {
        return Err(ReadError::Bad(417, "unsupported expectation"));
    }
    request.framing = framing(&request)?;
    Ok(request)
}

/// The body framing of `request` (RFC 9112 section 6.3), refusing what
/// could be read two ways.
fn framing(request: &Request) -> Result<Framing, ReadError> {
    let has_length = request.header("content-length").is_some();
    if request.header("transfer-encoding").is_some() {
        let codings: Vec<&str> = request.header_list("transfer-encoding").collect();
        if codings.iter().any(|c| !c.eq_ignore_ascii_case("chunked")) {
            return Err(ReadError::Bad(501, "unsupported transfer coding"));
        }
        return match codings.len() {
            0 => Err(ReadError::Bad(400, "empty Transfer-Encoding")),
            2.. => Err(ReadError::Bad(400, "chunked applied more than once")),
            _ if has_length => Err(ReadError::Bad(
                400,
                "both Transfer-Encoding and Content-Length",
            )),
            // RFC 9112 section 6.1: the framing of such a message is faulty.
            _ if request.minor_version == 0 => Err(ReadError::Bad(
                400,
                "Transfer-Encoding in an HTTP/1.0 request",
            )),
            _ => Ok(Framing::Chunked),
        };
    }
    if !has_length {
        return Ok(Framing::None);
    }
    // Repeated or listed values are accepted only when they all agree.
    let mut length = None;
    for value in request.header_values("content-length") {
        for element in value.split(',') {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReadError::Bad(400, "invalid Content-Length"));
            }
            // All digits: parsing fails only when the value does not fit.
            let n = element
                .parse::<u64>()
                .map_err(|_| ReadError::Bad(413, "request body too large"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ReadError::Bad(400, "conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    match length {
        None => Err(ReadError::Bad(400, "invalid Content-Length")),
        Some(n) if n > MAX_BODY as u64 => Err(ReadError::Bad(413, "request body too large")),
        Some(n) => Ok(Framing::Length(n as usize)),
    }
}

/// Reads up to and including the blank line that ends a request head.
fn read_head_bytes<R: Read>(reader: &mut BufReader<R>) -> Result<Vec<u8>, ReadError> {
    let mut head = Vec::with_capacity(512);
    // Empty lines before the request line are tolerated (RFC 9112 section
    // 2.2) but count against the head's limit.
    let mut skipped = 0;
    loop {
        let before = head.len();
        let limit = MAX_HEAD + 1 - (skipped + head.len());
        let n = reader
            .by_ref()
            .take(limit as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Err(ReadError::Closed)
            } else {
                Err(ReadError::Bad(
                    400,
                    "connection closed inside the request head",
                ))
            };
        }
        if skipped + head.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request head too large"));
        }
        let line = &head[before..];
        let blank = line == b"\r\n" || line == b"\n";
        if blank && before == 0 {
            skipped += line.len();
            head.clear();
        } else if blank {
            return Ok(head);
        }
    }
}

/// Reads the body `framing` announces.
pub fn read_body<R: Read>(
    reader: &mut BufReader<R>,
    framing: Framing,
) -> Result<Vec<u8>, ReadError> {
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(length) => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            Ok(body)
        }
        Framing::Chunked => read_chunked(reader),
    }
}

/// Longest chunk-size line (size and extensions) or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Reads a chunked body (RFC 9112 section 7.1): chunk extensions are
/// ignored, trailer fields read and discarded.
fn read_chunked<R: Read>(reader: &mut BufReader<R>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = chunk_size(&line)?;
        if size == 0 {
            break;
        }
        let end = body
            .len()
            .checked_add(size)
            .filter(|&end| end <= MAX_BODY)
            .ok_or(ReadError::Bad(413, "request body too large"))?;
        let start = body.len();
        body.resize(end, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(ReadError::Bad(400, "chunk not followed by CRLF"));
        }
    }
    let mut trailers = 0;
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok(body);
        }
        trailers += line.len();
        if trailers > MAX_HEAD {
            return Err(ReadError::Bad(431, "trailer section too large"));
        }
        if !line.contains(&b':') {
            return Err(ReadError::Bad(400, "malformed trailer field"));
        }
    }
}

/// The size of a chunk-size line: hex digits, then optional whitespace and
/// `;` extensions.
fn chunk_size(line: &[u8]) -> Result<usize, ReadError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii_end();
    if digits.is_empty() {
        return Err(ReadError::Bad(400, "invalid chunk size"));
    }
    digits.iter().try_fold(0usize, |size, &digit| {
        let value = (digit as char)
            .to_digit(16)
            .ok_or(ReadError::Bad(400, "invalid chunk size"))?;
        size.checked_mul(16)
            .and_then(|s| s.checked_add(value as usize))
            .ok_or(ReadError::Bad(413, "request body too large"))
    })
}

/// Reads one line of a chunked body, without its line ending (CRLF, or a
/// bare LF, RFC 9112 section 2.2).
fn read_line<R: Read>(reader: &mut BufReader<R>) -> Result<Vec<u8>, ReadError> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_CHUNK_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if line.pop() != Some(b'\n') {
        return Err(if line.len() >= MAX_CHUNK_LINE {
            ReadError::Bad(400, "chunk line too long")
        } else {
            ReadError::Bad(400, "connection closed inside the request")
        });
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// A response about to be written.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The methods the target allows, sent as `Allow` (with a 405).
    pub allow: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            allow: None,
            body: body.into().into_bytes(),
        }
    }

    /// Whether this status forbids a body (RFC 9110 sections 15.3.5 and
    /// 15.4.5): the response then has neither body nor `Content-Length`.
    fn bodiless(&self) -> bool {
        matches!(self.status, 204 | 304)
    }
}

/// The reason phrase for `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Writes the interim `100 Continue` that lets a client waiting on
/// `Expect: 100-continue` send its body.
pub fn write_continue<W: Write>(out: &mut W) -> io::Result<()> {
    out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    out.flush()
}

/// Writes `response`; `head_only` omits the body (for `HEAD`, whose
/// `Content-Length` is still that of the body a `GET` would get). Returns
/// the number of bytes written.
pub fn write_response<W: Write>(
    out: &mut W,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<u64> {
    use std::fmt::Write as _;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    if !response.bodiless() {
        let _ = write!(
            head,
            "Content-Type: {}\r\nContent-Length: {}\r\n",
            response.content_type,
            response.body.len()
        );
    }
    if let Some(allow) = response.allow {
        let _ = write!(head, "Allow: {allow}\r\n");
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let _ = write!(
        head,
        "Connection: {connection}\r\nServer: usdt-http-server\r\n\r\n"
    );
    out.write_all(head.as_bytes())?;
    let mut written = head.len() as u64;
    if !head_only && !response.bodiless() {
        out.write_all(&response.body)?;
        written += response.body.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one request from `bytes`.
    fn read(bytes: &[u8]) -> Result<Request, ReadError> {
        read_request(&mut BufReader::new(bytes))
    }

    /// The status a malformed request is answered with.
    fn refusal(bytes: &[u8]) -> u16 {
        match read(bytes) {
            Err(ReadError::Bad(status, _)) => status,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn chunked(body: &str) -> Vec<u8> {
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
            .into_bytes()
    }

    #[test]
    fn parses_a_request_head() {
        let request =
            read(b"\r\nGET /hello/a?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-A: b\r\n\r\n").unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path(), "/hello/a");
        assert_eq!(request.query("y"), Some("2"));
        assert_eq!(request.minor_version, 1);
        assert_eq!(request.header("x-a"), Some("b"));
        assert_eq!(request.framing, Framing::None);
        assert!(request.keep_alive());
    }

    #[test]
    fn pipelined_requests_are_read_one_after_the_other() {
        let bytes = b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut reader = BufReader::new(&bytes[..]);
        let first = read_request(&mut reader).unwrap();
        assert_eq!(first.body, b"abc");
        assert_eq!(read_request(&mut reader).unwrap().method, "GET");
        assert!(matches!(read_request(&mut reader), Err(ReadError::Closed)));
    }

    #[test]
    fn keep_alive_follows_version_and_connection_options() {
        let keep = |head: &str| read(head.as_bytes()).unwrap().keep_alive();
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!keep(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n"
        ));
        // An option merely containing "close" is not close.
        assert!(keep(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed-caption\r\n\r\n"
        ));
    }

    #[test]
    fn decodes_chunked_bodies_with_extensions_and_trailers() {
        let request = read(&chunked(
            "3;name=value\r\nabc\r\n0A ; x\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(request.body, b"abc0123456789");
        // Bare LF line endings are accepted.
        assert_eq!(read(&chunked("1\nz\r\n0\n\n")).unwrap().body, b"z");
    }

    #[test]
    fn a_chunk_size_that_overflows_is_refused_not_a_panic() {
        assert_eq!(refusal(&chunked("1\r\na\r\nffffffffffffffff\r\n")), 413);
        assert_eq!(refusal(&chunked("10000000000000000\r\n")), 413);
        assert_eq!(refusal(&chunked(&format!("{:x}\r\n", MAX_BODY + 1))), 413);
        let two_halves = format!("{:x}\r\n", MAX_BODY / 2 + 1);
        let mut bytes = chunked(&two_halves);
        bytes.extend(vec![b'a'; MAX_BODY / 2 + 1]);
        bytes.extend(b"\r\n");
        bytes.extend(two_halves.as_bytes());
        assert_eq!(refusal(&bytes), 413);
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for body in [
            "+1\r\na\r\n0\r\n\r\n",
            "\r\n",
            "g\r\n",
            " 1\r\na\r\n0\r\n\r\n",
            "1\r\nab\r\n0\r\n\r\n",
            "1\r\na\r\n0\r\nno colon\r\n\r\n",
            "1\r\na",
            "1\r\na\r\n0\r\n",
        ] {
            assert_eq!(refusal(&chunked(body)), 400, "{body:?}");
        }
        let long = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_CHUNK_LINE));
        assert_eq!(refusal(&chunked(&long)), 400);
    }

    #[test]
    fn content_length_frames_the_body() {
        let request =
            read(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello!")
                .unwrap();
        assert_eq!(request.body, b"hello");
        let length = |value: &str| {
            refusal(
                format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {value}\r\n\r\n").as_bytes(),
            )
        };
        for bad in ["", "+5", "-1", "5a", "0x5", "5,", "5, 6"] {
            assert_eq!(length(bad), 400, "{bad:?}");
        }
        assert_eq!(length(&(MAX_BODY + 1).to_string()), 413);
        assert_eq!(length("99999999999999999999999"), 413);
        assert_eq!(
            refusal(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
            ),
            400
        );
        // The peer closing inside the body.
        assert_eq!(
            refusal(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nab"),
            400
        );
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_refused() {
        let coding = |value: &str, extra: &str| {
            refusal(
                format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {value}\r\n{extra}\r\n")
                    .as_bytes(),
            )
        };
        assert_eq!(coding("gzip", ""), 501);
        assert_eq!(coding("gzip, chunked", ""), 501);
        assert_eq!(coding("chunked, chunked", ""), 400);
        assert_eq!(coding("chunked", "Content-Length: 3\r\n"), 400);
        assert_eq!(
            refusal(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400
        );
    }

    #[test]
    fn host_is_required_once_in_http_1_1() {
        assert_eq!(refusal(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            refusal(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400
        );
        assert!(read(b"GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn expectations() {
        let head = |version: &str, expect: &str| {
            read_head(&mut BufReader::new(
                format!("POST / HTTP/1.{version}\r\nHost: h\r\nExpect: {expect}\r\nContent-Length: 1\r\n\r\n")
                    .as_bytes(),
            ))
        };
        assert!(head("1", "100-Continue").unwrap().expects_continue());
        assert!(!head("0", "100-continue").unwrap().expects_continue());
        assert!(matches!(head("1", "magic"), Err(ReadError::Bad(417, _))));
    }

    #[test]
    fn malformed_or_oversized_heads_are_refused() {
        assert_eq!(refusal(b"BROKEN\r\n\r\n"), 400);
        assert_eq!(refusal(b"GET / HTTP/1.1\r\nHost"), 400);
        assert_eq!(refusal(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"), 400);
        let huge = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(refusal(huge.as_bytes()), 431);
        let blank_lines = "\r\n".repeat(MAX_HEAD);
        assert_eq!(refusal(blank_lines.as_bytes()), 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            refusal(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
    }

    #[test]
    fn never_panics_on_truncated_requests() {
        let full = chunked("3;e\r\nabc\r\n0\r\nT: v\r\n\r\n");
        for end in 0..full.len() {
            let _ = read(&full[..end]);
        }
        assert_eq!(read(&full).unwrap().body, b"abc");
    }

    #[test]
    fn writes_heads_with_the_body_length() {
        let written = |response: &Response, head_only: bool| {
            let mut out = Vec::new();
            let n = write_response(&mut out, response, true, head_only).unwrap();
            assert_eq!(n as usize, out.len());
            String::from_utf8(out).unwrap()
        };
        let text = Response::text(200, "hello\n");
        let get = written(&text, false);
        let head = written(&text, true);
        assert!(get.contains("\r\nContent-Length: 6\r\n"), "{get}");
        assert_eq!(get.strip_suffix("hello\n"), Some(head.as_str()));
        let mut refusal = Response::text(405, "no\n");
        refusal.allow = Some("GET, HEAD");
        assert!(written(&refusal, false).contains("\r\nAllow: GET, HEAD\r\n"));
        let none = written(&Response::text(204, "x"), false);
        assert!(
            !none.contains("Content-Length") && none.ends_with("\r\n\r\n"),
            "{none}"
        );
    }
}
