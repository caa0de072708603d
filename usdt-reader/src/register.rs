//! Machine registers named by argument operands, identified by their DWARF
//! register numbers.

use crate::arch::Arch;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// A machine register named in an operand: which full register (by DWARF
/// number) and which part of it (width and shift) the operand spells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Register {
    /// The architecture whose register this is.
    pub arch: Arch,
    /// The DWARF register number of the full register. x86-64: rax=0,
    /// rdx=1, rcx=2, rbx=3, rsi=4, rdi=5, rbp=6, rsp=7, r8..r15=8..15,
    /// rip=16, xmm0..xmm15=17..32. i386: eax=0, ecx=1, edx=2, ebx=3, esp=4,
    /// ebp=5, esi=6, edi=7, eip=8, xmm0..xmm7=21..28. aarch64: x0..x30=0..30,
    /// sp=31. arm: r0..r15=0..15. riscv64: x0..x31=0..31. s390x:
    /// r0..r15=0..15. powerpc64: r0..r31=0..31.
    pub dwarf: u16,
    /// Width in bits as written: `%al`=8, `%ax`=16, `%eax`=32, `%rax`=64,
    /// `w0`=32, `x0`=64, `%xmm0`=128.
    pub width: u8,
    /// 8 for the x86 high-byte registers `%ah`, `%bh`, `%ch`, `%dh`, else 0.
    pub bit_shift: u8,
}

/// One spelling of a register: name, DWARF number, width, shift.
type Spelling = (&'static str, u16, u8, u8);

/// x86-64 register spellings (without the `%`).
const X86_64: &[Spelling] = &[
    ("rax", 0, 64, 0),
    ("eax", 0, 32, 0),
    ("ax", 0, 16, 0),
    ("al", 0, 8, 0),
    ("ah", 0, 8, 8),
    ("rdx", 1, 64, 0),
    ("edx", 1, 32, 0),
    ("dx", 1, 16, 0),
    ("dl", 1, 8, 0),
    ("dh", 1, 8, 8),
    ("rcx", 2, 64, 0),
    ("ecx", 2, 32, 0),
    ("cx", 2, 16, 0),
    ("cl", 2, 8, 0),
    ("ch", 2, 8, 8),
    ("rbx", 3, 64, 0),
    ("ebx", 3, 32, 0),
    ("bx", 3, 16, 0),
    ("bl", 3, 8, 0),
    ("bh", 3, 8, 8),
    ("rsi", 4, 64, 0),
    ("esi", 4, 32, 0),
    ("si", 4, 16, 0),
    ("sil", 4, 8, 0),
    ("rdi", 5, 64, 0),
    ("edi", 5, 32, 0),
    ("di", 5, 16, 0),
    ("dil", 5, 8, 0),
    ("rbp", 6, 64, 0),
    ("ebp", 6, 32, 0),
    ("bp", 6, 16, 0),
    ("bpl", 6, 8, 0),
    ("rsp", 7, 64, 0),
    ("esp", 7, 32, 0),
    ("sp", 7, 16, 0),
    ("spl", 7, 8, 0),
    ("r8", 8, 64, 0),
    ("r8d", 8, 32, 0),
    ("r8w", 8, 16, 0),
    ("r8b", 8, 8, 0),
    ("r9", 9, 64, 0),
    ("r9d", 9, 32, 0),
    ("r9w", 9, 16, 0),
    ("r9b", 9, 8, 0),
    ("r10", 10, 64, 0),
    ("r10d", 10, 32, 0),
    ("r10w", 10, 16, 0),
    ("r10b", 10, 8, 0),
    ("r11", 11, 64, 0),
    ("r11d", 11, 32, 0),
    ("r11w", 11, 16, 0),
    ("r11b", 11, 8, 0),
    ("r12", 12, 64, 0),
    ("r12d", 12, 32, 0),
    ("r12w", 12, 16, 0),
    ("r12b", 12, 8, 0),
    ("r13", 13, 64, 0),
    ("r13d", 13, 32, 0),
    ("r13w", 13, 16, 0),
    ("r13b", 13, 8, 0),
    ("r14", 14, 64, 0),
    ("r14d", 14, 32, 0),
    ("r14w", 14, 16, 0),
    ("r14b", 14, 8, 0),
    ("r15", 15, 64, 0),
    ("r15d", 15, 32, 0),
    ("r15w", 15, 16, 0),
    ("r15b", 15, 8, 0),
    ("rip", 16, 64, 0),
    ("xmm0", 17, 128, 0),
    ("xmm1", 18, 128, 0),
    ("xmm2", 19, 128, 0),
    ("xmm3", 20, 128, 0),
    ("xmm4", 21, 128, 0),
    ("xmm5", 22, 128, 0),
    ("xmm6", 23, 128, 0),
    ("xmm7", 24, 128, 0),
    ("xmm8", 25, 128, 0),
    ("xmm9", 26, 128, 0),
    ("xmm10", 27, 128, 0),
    ("xmm11", 28, 128, 0),
    ("xmm12", 29, 128, 0),
    ("xmm13", 30, 128, 0),
    ("xmm14", 31, 128, 0),
    ("xmm15", 32, 128, 0),
];

/// i386 register spellings (without the `%`).
const X86: &[Spelling] = &[
    ("eax", 0, 32, 0),
    ("ax", 0, 16, 0),
    ("al", 0, 8, 0),
    ("ah", 0, 8, 8),
    ("ecx", 1, 32, 0),
    ("cx", 1, 16, 0),
    ("cl", 1, 8, 0),
    ("ch", 1, 8, 8),
    ("edx", 2, 32, 0),
    ("dx", 2, 16, 0),
    ("dl", 2, 8, 0),
    ("dh", 2, 8, 8),
    ("ebx", 3, 32, 0),
    ("bx", 3, 16, 0),
    ("bl", 3, 8, 0),
    ("bh", 3, 8, 8),
    ("esp", 4, 32, 0),
    ("sp", 4, 16, 0),
    ("ebp", 5, 32, 0),
    ("bp", 5, 16, 0),
    ("esi", 6, 32, 0),
    ("si", 6, 16, 0),
    ("edi", 7, 32, 0),
    ("di", 7, 16, 0),
    ("eip", 8, 32, 0),
    ("xmm0", 21, 128, 0),
    ("xmm1", 22, 128, 0),
    ("xmm2", 23, 128, 0),
    ("xmm3", 24, 128, 0),
    ("xmm4", 25, 128, 0),
    ("xmm5", 26, 128, 0),
    ("xmm6", 27, 128, 0),
    ("xmm7", 28, 128, 0),
];

/// aarch64 register spellings: `x0`..`x30`, `w0`..`w30`, `sp`, `wsp`.
const AARCH64: &[Spelling] = &[
    ("x0", 0, 64, 0),
    ("x1", 1, 64, 0),
    ("x2", 2, 64, 0),
    ("x3", 3, 64, 0),
    ("x4", 4, 64, 0),
    ("x5", 5, 64, 0),
    ("x6", 6, 64, 0),
    ("x7", 7, 64, 0),
    ("x8", 8, 64, 0),
    ("x9", 9, 64, 0),
    ("x10", 10, 64, 0),
    ("x11", 11, 64, 0),
    ("x12", 12, 64, 0),
    ("x13", 13, 64, 0),
    ("x14", 14, 64, 0),
    ("x15", 15, 64, 0),
    ("x16", 16, 64, 0),
    ("x17", 17, 64, 0),
    ("x18", 18, 64, 0),
    ("x19", 19, 64, 0),
    ("x20", 20, 64, 0),
    ("x21", 21, 64, 0),
    ("x22", 22, 64, 0),
    ("x23", 23, 64, 0),
    ("x24", 24, 64, 0),
    ("x25", 25, 64, 0),
    ("x26", 26, 64, 0),
    ("x27", 27, 64, 0),
    ("x28", 28, 64, 0),
    ("x29", 29, 64, 0),
    ("x30", 30, 64, 0),
    ("sp", 31, 64, 0),
    ("w0", 0, 32, 0),
    ("w1", 1, 32, 0),
    ("w2", 2, 32, 0),
    ("w3", 3, 32, 0),
    ("w4", 4, 32, 0),
    ("w5", 5, 32, 0),
    ("w6", 6, 32, 0),
    ("w7", 7, 32, 0),
    ("w8", 8, 32, 0),
    ("w9", 9, 32, 0),
    ("w10", 10, 32, 0),
    ("w11", 11, 32, 0),
    ("w12", 12, 32, 0),
    ("w13", 13, 32, 0),
    ("w14", 14, 32, 0),
    ("w15", 15, 32, 0),
    ("w16", 16, 32, 0),
    ("w17", 17, 32, 0),
    ("w18", 18, 32, 0),
    ("w19", 19, 32, 0),
    ("w20", 20, 32, 0),
    ("w21", 21, 32, 0),
    ("w22", 22, 32, 0),
    ("w23", 23, 32, 0),
    ("w24", 24, 32, 0),
    ("w25", 25, 32, 0),
    ("w26", 26, 32, 0),
    ("w27", 27, 32, 0),
    ("w28", 28, 32, 0),
    ("w29", 29, 32, 0),
    ("w30", 30, 32, 0),
    ("wsp", 31, 32, 0),
];

/// 32-bit Arm register spellings, as gcc prints them (`fp`, `ip`, `sp`,
/// `lr`, `pc`) and as `r0`..`r15`.
const ARM: &[Spelling] = &[
    ("r0", 0, 32, 0),
    ("r1", 1, 32, 0),
    ("r2", 2, 32, 0),
    ("r3", 3, 32, 0),
    ("r4", 4, 32, 0),
    ("r5", 5, 32, 0),
    ("r6", 6, 32, 0),
    ("r7", 7, 32, 0),
    ("r8", 8, 32, 0),
    ("r9", 9, 32, 0),
    ("r10", 10, 32, 0),
    ("fp", 11, 32, 0),
    ("ip", 12, 32, 0),
    ("sp", 13, 32, 0),
    ("lr", 14, 32, 0),
    ("pc", 15, 32, 0),
    ("sb", 9, 32, 0),
    ("sl", 10, 32, 0),
    ("r11", 11, 32, 0),
    ("r12", 12, 32, 0),
    ("r13", 13, 32, 0),
    ("r14", 14, 32, 0),
    ("r15", 15, 32, 0),
];

/// RISC-V register spellings: ABI names first (as compilers print them),
/// then `fp` and `x0`..`x31`.
const RISCV64: &[Spelling] = &[
    ("zero", 0, 64, 0),
    ("ra", 1, 64, 0),
    ("sp", 2, 64, 0),
    ("gp", 3, 64, 0),
    ("tp", 4, 64, 0),
    ("t0", 5, 64, 0),
    ("t1", 6, 64, 0),
    ("t2", 7, 64, 0),
    ("s0", 8, 64, 0),
    ("s1", 9, 64, 0),
    ("a0", 10, 64, 0),
    ("a1", 11, 64, 0),
    ("a2", 12, 64, 0),
    ("a3", 13, 64, 0),
    ("a4", 14, 64, 0),
    ("a5", 15, 64, 0),
    ("a6", 16, 64, 0),
    ("a7", 17, 64, 0),
    ("s2", 18, 64, 0),
    ("s3", 19, 64, 0),
    ("s4", 20, 64, 0),
    ("s5", 21, 64, 0),
    ("s6", 22, 64, 0),
    ("s7", 23, 64, 0),
    ("s8", 24, 64, 0),
    ("s9", 25, 64, 0),
    ("s10", 26, 64, 0),
    ("s11", 27, 64, 0),
    ("t3", 28, 64, 0),
    ("t4", 29, 64, 0),
    ("t5", 30, 64, 0),
    ("t6", 31, 64, 0),
    ("fp", 8, 64, 0),
    ("x0", 0, 64, 0),
    ("x1", 1, 64, 0),
    ("x2", 2, 64, 0),
    ("x3", 3, 64, 0),
    ("x4", 4, 64, 0),
    ("x5", 5, 64, 0),
    ("x6", 6, 64, 0),
    ("x7", 7, 64, 0),
    ("x8", 8, 64, 0),
    ("x9", 9, 64, 0),
    ("x10", 10, 64, 0),
    ("x11", 11, 64, 0),
    ("x12", 12, 64, 0),
    ("x13", 13, 64, 0),
    ("x14", 14, 64, 0),
    ("x15", 15, 64, 0),
    ("x16", 16, 64, 0),
    ("x17", 17, 64, 0),
    ("x18", 18, 64, 0),
    ("x19", 19, 64, 0),
    ("x20", 20, 64, 0),
    ("x21", 21, 64, 0),
    ("x22", 22, 64, 0),
    ("x23", 23, 64, 0),
    ("x24", 24, 64, 0),
    ("x25", 25, 64, 0),
    ("x26", 26, 64, 0),
    ("x27", 27, 64, 0),
    ("x28", 28, 64, 0),
    ("x29", 29, 64, 0),
    ("x30", 30, 64, 0),
    ("x31", 31, 64, 0),
];

/// s390x general registers `r0`..`r15` (written `%r0`..`%r15`).
const S390X: &[Spelling] = &[
    ("r0", 0, 64, 0),
    ("r1", 1, 64, 0),
    ("r2", 2, 64, 0),
    ("r3", 3, 64, 0),
    ("r4", 4, 64, 0),
    ("r5", 5, 64, 0),
    ("r6", 6, 64, 0),
    ("r7", 7, 64, 0),
    ("r8", 8, 64, 0),
    ("r9", 9, 64, 0),
    ("r10", 10, 64, 0),
    ("r11", 11, 64, 0),
    ("r12", 12, 64, 0),
    ("r13", 13, 64, 0),
    ("r14", 14, 64, 0),
    ("r15", 15, 64, 0),
];

/// powerpc64 general registers `r0`..`r31` (written `%r3`, `r3` or `3`).
const POWERPC64: &[Spelling] = &[
    ("r0", 0, 64, 0),
    ("r1", 1, 64, 0),
    ("r2", 2, 64, 0),
    ("r3", 3, 64, 0),
    ("r4", 4, 64, 0),
    ("r5", 5, 64, 0),
    ("r6", 6, 64, 0),
    ("r7", 7, 64, 0),
    ("r8", 8, 64, 0),
    ("r9", 9, 64, 0),
    ("r10", 10, 64, 0),
    ("r11", 11, 64, 0),
    ("r12", 12, 64, 0),
    ("r13", 13, 64, 0),
    ("r14", 14, 64, 0),
    ("r15", 15, 64, 0),
    ("r16", 16, 64, 0),
    ("r17", 17, 64, 0),
    ("r18", 18, 64, 0),
    ("r19", 19, 64, 0),
    ("r20", 20, 64, 0),
    ("r21", 21, 64, 0),
    ("r22", 22, 64, 0),
    ("r23", 23, 64, 0),
    ("r24", 24, 64, 0),
    ("r25", 25, 64, 0),
    ("r26", 26, 64, 0),
    ("r27", 27, 64, 0),
    ("r28", 28, 64, 0),
    ("r29", 29, 64, 0),
    ("r30", 30, 64, 0),
    ("r31", 31, 64, 0),
];

fn table(arch: Arch) -> &'static [Spelling] {
    match arch {
        Arch::X86_64 => X86_64,
        Arch::X86 => X86,
        Arch::AArch64 => AARCH64,
        Arch::Arm => ARM,
        Arch::Riscv64 => RISCV64,
        Arch::S390x => S390X,
        Arch::PowerPc64 => POWERPC64,
        Arch::Other(_) => &[],
    }
}

/// One architecture's spellings by name: DWARF number, width, shift.
type Index = HashMap<&'static str, (u16, u8, u8)>;

/// Each architecture's spellings by name, built on first use.
fn index(arch: Arch) -> Option<&'static Index> {
    static INDEXES: [OnceLock<Index>; 7] = [const { OnceLock::new() }; 7];
    let slot = match arch {
        Arch::X86_64 => 0,
        Arch::X86 => 1,
        Arch::AArch64 => 2,
        Arch::Arm => 3,
        Arch::Riscv64 => 4,
        Arch::S390x => 5,
        Arch::PowerPc64 => 6,
        Arch::Other(_) => return None,
    };
    Some(INDEXES[slot].get_or_init(|| {
        table(arch)
            .iter()
            .map(|&(name, dwarf, width, shift)| (name, (dwarf, width, shift)))
            .collect()
    }))
}

impl Register {
    /// The register `name` of `arch`, spelled as in that architecture's
    /// operands without any prefix (`eax`, not `%eax`; `x0`, `w0`; `r3`).
    pub fn from_name(arch: Arch, name: &str) -> Option<Register> {
        let &(dwarf, width, bit_shift) = index(arch)?.get(name)?;
        Some(Register {
            arch,
            dwarf,
            width,
            bit_shift,
        })
    }

    /// The register's spelling without prefix (`eax`, `ah`, `x0`, `w3`,
    /// `sp`, `a0`, `r3`): the first name that architecture's table gives for
    /// this DWARF number, width and shift.
    pub fn name(&self) -> &'static str {
        table(self.arch)
            .iter()
            .find(|&&(_, dwarf, width, shift)| {
                dwarf == self.dwarf && width == self.width && shift == self.bit_shift
            })
            .map(|(name, ..)| *name)
            .unwrap_or("?")
    }

    /// The full-width register this one is part of (`%eax` → `%rax`,
    /// `w0` → `x0`); itself when already full width.
    pub fn full(&self) -> Register {
        let width = match self.arch {
            Arch::X86 | Arch::Arm => 32,
            _ => 64,
        };
        if self.width >= width {
            return *self;
        }
        Register {
            width,
            bit_shift: 0,
            ..*self
        }
    }
}

impl fmt::Display for Register {
    /// The register as an operand spells it: `%eax` on x86 and s390x, bare
    /// (`x0`, `a0`, `r3`) elsewhere.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.arch {
            Arch::X86_64 | Arch::X86 | Arch::S390x | Arch::PowerPc64 => {
                write!(f, "%{}", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl Serialize for Register {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Register", 4)?;
        s.serialize_field("name", self.name())?;
        s.serialize_field("dwarf", &self.dwarf)?;
        s.serialize_field("width", &self.width)?;
        s.serialize_field("bit_shift", &self.bit_shift)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for arch in [
            Arch::X86_64,
            Arch::X86,
            Arch::AArch64,
            Arch::Arm,
            Arch::Riscv64,
            Arch::S390x,
            Arch::PowerPc64,
        ] {
            for &(name, dwarf, width, shift) in table(arch) {
                let reg = Register::from_name(arch, name).unwrap();
                assert_eq!((reg.dwarf, reg.width, reg.bit_shift), (dwarf, width, shift));
                // Aliases (fp/s0, sb/r9, x8/s0...) map back to the canonical name,
                // which names the same register.
                let canonical = Register::from_name(arch, reg.name()).unwrap();
                assert_eq!(canonical, reg, "{arch} {name}");
            }
        }
    }

    #[test]
    fn x86_64_numbers_and_parts() {
        let reg = |n| Register::from_name(Arch::X86_64, n).unwrap();
        assert_eq!(reg("rdi").dwarf, 5);
        assert_eq!(reg("dil").width, 8);
        assert_eq!(reg("ah").bit_shift, 8);
        assert_eq!(reg("ah").full(), reg("rax"));
        assert_eq!(reg("r13w").full().name(), "r13");
        assert_eq!(reg("rip").dwarf, 16);
        assert_eq!(reg("xmm15").dwarf, 32);
        assert_eq!(reg("ecx").to_string(), "%ecx");
        assert!(Register::from_name(Arch::X86_64, "r16").is_none());
        assert!(Register::from_name(Arch::X86, "rax").is_none());
        assert!(Register::from_name(Arch::X86, "sil").is_none());
    }

    #[test]
    fn other_architectures() {
        let w3 = Register::from_name(Arch::AArch64, "w3").unwrap();
        assert_eq!((w3.dwarf, w3.width, w3.full().name()), (3, 32, "x3"));
        assert_eq!(Register::from_name(Arch::AArch64, "sp").unwrap().dwarf, 31);
        assert_eq!(Register::from_name(Arch::Arm, "fp").unwrap().dwarf, 11);
        assert_eq!(Register::from_name(Arch::Arm, "r11").unwrap().name(), "fp");
        assert_eq!(Register::from_name(Arch::Riscv64, "a0").unwrap().dwarf, 10);
        assert_eq!(
            Register::from_name(Arch::Riscv64, "fp").unwrap().name(),
            "s0"
        );
        assert_eq!(
            Register::from_name(Arch::Riscv64, "x10")
                .unwrap()
                .to_string(),
            "a0"
        );
        assert_eq!(
            Register::from_name(Arch::S390x, "r15").unwrap().to_string(),
            "%r15"
        );
        assert_eq!(
            Register::from_name(Arch::PowerPc64, "r31").unwrap().dwarf,
            31
        );
        assert!(Register::from_name(Arch::Other(1), "r0").is_none());
    }
}
