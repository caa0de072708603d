//! The Rust examples in the workspace README's "Annotate your code" section
//! are real: each block appears verbatim in `examples/annotate.rs`, which
//! cargo builds with the tests.

use std::path::Path;

#[test]
fn readme_examples_are_compiled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).expect("README.md");
    let example =
        std::fs::read_to_string(root.join("examples/annotate.rs")).expect("examples/annotate.rs");
    let start = readme
        .find("## Annotate your code\n")
        .expect("an `## Annotate your code` section");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = 0;
    let mut rest = section;
    while let Some(open) = rest.find("```rust\n") {
        let body = &rest[open + "```rust\n".len()..];
        let close = body.find("```").expect("a closed code block");
        let block = &body[..close];
        assert!(
            example.contains(block),
            "README block not in examples/annotate.rs:\n{block}"
        );
        blocks += 1;
        rest = &body[close + 3..];
    }
    assert!(blocks >= 3, "only {blocks} Rust blocks in the section");
}
