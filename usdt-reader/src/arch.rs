//! Target architectures, told apart by an ELF file's machine and class.

use serde::Serialize;
use std::fmt;

/// The architecture an ELF file was built for, which decides the assembler
/// syntax of its probes' argument operands and the registers they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64 (AT&T syntax: `%rdi`, `-8(%rbp)`, `$5`, `sym(%rip)`).
    X86_64,
    /// 32-bit x86, i386 (AT&T syntax with 32-bit registers).
    X86,
    /// 64-bit Arm (`x0`, `w1`, `[sp, 16]`, `5`), LP64 or ILP32.
    AArch64,
    /// 32-bit Arm (`r0`, `[fp, #-8]`, `#5`).
    Arm,
    /// 64-bit RISC-V (`a0`, `-24(s0)`, `5`).
    Riscv64,
    /// IBM Z, 64-bit (`%r2`, `160(%r15)`, `5`).
    S390x,
    /// 64-bit POWER, either endianness (`%r3` or `3`, `-8(31)`, `i5`).
    PowerPc64,
    /// Any other machine (the ELF `e_machine` value): its probes are listed,
    /// but their argument operands are not parsed.
    Other(u16),
}

/// `e_machine` values this crate recognises.
mod machine {
    pub(super) const EM_386: u16 = 3;
    pub(super) const EM_PPC64: u16 = 21;
    pub(super) const EM_S390: u16 = 22;
    pub(super) const EM_ARM: u16 = 40;
    pub(super) const EM_X86_64: u16 = 62;
    pub(super) const EM_AARCH64: u16 = 183;
    pub(super) const EM_RISCV: u16 = 243;
}

impl Arch {
    /// The architecture of an ELF file with machine `e_machine`, 64-bit when
    /// `is_64` (ELFCLASS64).
    pub fn from_elf(e_machine: u16, is_64: bool) -> Arch {
        use machine::*;
        match (e_machine, is_64) {
            (EM_X86_64, true) => Arch::X86_64,
            (EM_386, false) => Arch::X86,
            // ILP32 (ELF32) code writes operands the same way.
            (EM_AARCH64, _) => Arch::AArch64,
            (EM_ARM, false) => Arch::Arm,
            (EM_RISCV, true) => Arch::Riscv64,
            (EM_S390, true) => Arch::S390x,
            (EM_PPC64, true) => Arch::PowerPc64,
            (other, _) => Arch::Other(other),
        }
    }

    /// The width of an address in bytes (4 or 8); `Other` counts as 8.
    pub fn address_size(self) -> u8 {
        match self {
            Arch::X86 | Arch::Arm => 4,
            _ => 8,
        }
    }
}

impl fmt::Display for Arch {
    /// A short lower-case name: `x86_64`, `x86`, `aarch64`, `arm`,
    /// `riscv64`, `s390x`, `powerpc64`, or `machine N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::X86_64 => f.write_str("x86_64"),
            Arch::X86 => f.write_str("x86"),
            Arch::AArch64 => f.write_str("aarch64"),
            Arch::Arm => f.write_str("arm"),
            Arch::Riscv64 => f.write_str("riscv64"),
            Arch::S390x => f.write_str("s390x"),
            Arch::PowerPc64 => f.write_str("powerpc64"),
            Arch::Other(machine) => write!(f, "machine {machine}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_and_classes() {
        assert_eq!(Arch::from_elf(62, true), Arch::X86_64);
        assert_eq!(Arch::from_elf(3, false), Arch::X86);
        assert_eq!(Arch::from_elf(183, true), Arch::AArch64);
        assert_eq!(Arch::from_elf(183, false), Arch::AArch64);
        assert_eq!(Arch::from_elf(40, false), Arch::Arm);
        assert_eq!(Arch::from_elf(243, true), Arch::Riscv64);
        assert_eq!(Arch::from_elf(22, true), Arch::S390x);
        assert_eq!(Arch::from_elf(21, true), Arch::PowerPc64);
        // 32-bit RISC-V and 31-bit s390 are not supported targets.
        assert_eq!(Arch::from_elf(243, false), Arch::Other(243));
        assert_eq!(Arch::from_elf(22, false), Arch::Other(22));
        assert_eq!(Arch::from_elf(62, false), Arch::Other(62));
        assert_eq!(Arch::Other(258).to_string(), "machine 258");
        assert_eq!(Arch::X86.address_size(), 4);
        assert_eq!(Arch::AArch64.address_size(), 8);
    }
}
