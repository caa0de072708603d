//! The Rust example of the workspace README's "Aggregate in the kernel"
//! section is real: it appears verbatim in `examples/aggregate.rs`, which
//! cargo builds with the tests.

use std::path::Path;

#[test]
fn readme_aggregation_example_is_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).expect("README.md");
    let example =
        std::fs::read_to_string(root.join("examples/aggregate.rs")).expect("examples/aggregate.rs");
    let start = readme
        .find("## Aggregate in the kernel\n")
        .expect("an `## Aggregate in the kernel` section");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let open = section
        .find("```rust,no_run\n")
        .expect("a Rust block in the section");
    let body = &section[open + "```rust,no_run\n".len()..];
    let block = &body[..body.find("```").expect("a closed code block")];
    assert!(
        example.contains(block),
        "README block not in examples/aggregate.rs:\n{block}"
    );
}
