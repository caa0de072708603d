//! The example server's tests, in one test binary with a module per
//! subject: HTTP/1.1 as a client sees it, its probes' metadata, and its
//! probes traced and aggregated while it serves requests.

mod support;

mod aggregated_requests;
mod costly_arguments;
mod http_conformance;
mod probe_metadata;
mod traced_requests;
