//! Says which architecture's `struct pt_regs` the program reads, as aya-ebpf
//! does: `CARGO_CFG_BPF_TARGET_ARCH` when set (`--cfg bpf_target_arch=...`),
//! else the architecture of the build machine.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(usdt_arch, values(\"x86_64\", \"aarch64\", \"other\"))");
    let arch = std::env::var("CARGO_CFG_BPF_TARGET_ARCH").unwrap_or_else(|_| {
        let host = std::env::var("HOST").unwrap_or_default();
        host.split('-').next().unwrap_or_default().to_owned()
    });
    let arch = match arch.as_str() {
        "x86_64" | "aarch64" => arch.as_str(),
        _ => "other",
    };
    println!("cargo::rustc-cfg=usdt_arch=\"{arch}\"");
}
