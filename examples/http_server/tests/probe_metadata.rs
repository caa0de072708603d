//! The server's probe metadata, as tracers see it, kept in a snapshot: a
//! change to a probe's name, arguments or guard shows up in review.

#[test]
fn probe_metadata_snapshot() {
    // Keep the server's code (and with it every probe site) in this test
    // executable, whose probes the snapshot reads.
    std::hint::black_box(http_server::serve as fn(_, _) -> _);
    let probes = usdt_reader::snapshot::current_exe().expect("read this executable's probes");
    insta::assert_yaml_snapshot!(probes);
}
