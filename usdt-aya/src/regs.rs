//! Where the kernel saves user registers: byte offsets in `struct pt_regs`
//! of the host architecture, by DWARF register number.

use usdt_reader::Arch;

/// The architecture this program (and so the kernel running the BPF
/// program) is built for, if the tracer supports it.
pub fn host_arch() -> Option<Arch> {
    if cfg!(target_arch = "x86_64") {
        Some(Arch::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::AArch64)
    } else {
        None
    }
}

/// Byte offset in `struct pt_regs` of the register with DWARF number
/// `dwarf` on `arch` (x86-64: rax=0 .. r15=15, rip=16; aarch64: x0..x30 =
/// 0..30, sp=31).
pub fn register_offset(arch: Arch, dwarf: u16) -> Option<u16> {
    match arch {
        Arch::X86_64 => {
            // struct pt_regs { r15, r14, r13, r12, bp, bx, r11, r10, r9, r8,
            //   ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss }
            let slot = match dwarf {
                0 => 10,  // rax
                1 => 12,  // rdx
                2 => 11,  // rcx
                3 => 5,   // rbx
                4 => 13,  // rsi
                5 => 14,  // rdi
                6 => 4,   // rbp
                7 => 19,  // rsp
                8 => 9,   // r8
                9 => 8,   // r9
                10 => 7,  // r10
                11 => 6,  // r11
                12 => 3,  // r12
                13 => 2,  // r13
                14 => 1,  // r14
                15 => 0,  // r15
                16 => 16, // rip
                _ => return None,
            };
            Some(slot * 8)
        }
        // struct user_pt_regs { regs[31], sp, pc, pstate }
        Arch::AArch64 if dwarf <= 31 => Some(dwarf * 8),
        _ => None,
    }
}

/// Byte offset in `struct pt_regs` of the instruction pointer on `arch`.
/// At a uprobe hit it holds the probe's runtime address.
pub fn ip_offset(arch: Arch) -> Option<u16> {
    match arch {
        Arch::X86_64 => Some(16 * 8),
        Arch::AArch64 => Some(32 * 8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_offsets_follow_pt_regs() {
        assert_eq!(register_offset(Arch::X86_64, 0), Some(80)); // ax
        assert_eq!(register_offset(Arch::X86_64, 5), Some(112)); // di
        assert_eq!(register_offset(Arch::X86_64, 4), Some(104)); // si
        assert_eq!(register_offset(Arch::X86_64, 7), Some(152)); // sp
        assert_eq!(register_offset(Arch::X86_64, 15), Some(0)); // r15
        assert_eq!(register_offset(Arch::X86_64, 16), ip_offset(Arch::X86_64));
        assert_eq!(register_offset(Arch::X86_64, 17), None);
        // Every general register has its own slot.
        let mut seen: Vec<u16> = (0..=16)
            .filter_map(|r| register_offset(Arch::X86_64, r))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 17);
    }

    #[test]
    fn aarch64_offsets_follow_user_pt_regs() {
        assert_eq!(register_offset(Arch::AArch64, 0), Some(0));
        assert_eq!(register_offset(Arch::AArch64, 29), Some(232));
        assert_eq!(register_offset(Arch::AArch64, 31), Some(248)); // sp
        assert_eq!(ip_offset(Arch::AArch64), Some(256));
        assert_eq!(register_offset(Arch::AArch64, 32), None);
        assert_eq!(register_offset(Arch::Riscv64, 1), None);
    }
}
