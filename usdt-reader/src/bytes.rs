//! Bounds-checked reads of integers and strings from untrusted bytes, in
//! either byte order and either ELF class.

/// Byte order of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// The layout of ELF data: byte order and address width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Byte order.
    pub endian: Endian,
    /// Whether addresses are 8 bytes wide (ELFCLASS64) rather than 4.
    pub is_64: bool,
}

impl Layout {
    /// 64-bit little-endian (x86-64, aarch64, ...).
    pub const LE64: Layout = Layout {
        endian: Endian::Little,
        is_64: true,
    };

    /// The width of an address in bytes.
    pub fn address_size(self) -> usize {
        if self.is_64 { 8 } else { 4 }
    }

    /// The `u16` at `offset`, if `data` holds it.
    pub fn u16(self, data: &[u8], offset: usize) -> Option<u16> {
        let bytes: [u8; 2] = data.get(offset..offset.checked_add(2)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(bytes),
            Endian::Big => u16::from_be_bytes(bytes),
        })
    }

    /// The `u32` at `offset`, if `data` holds it.
    pub fn u32(self, data: &[u8], offset: usize) -> Option<u32> {
        let bytes: [u8; 4] = data.get(offset..offset.checked_add(4)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        })
    }

    /// The `u64` at `offset`, if `data` holds it.
    pub fn u64(self, data: &[u8], offset: usize) -> Option<u64> {
        let bytes: [u8; 8] = data.get(offset..offset.checked_add(8)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(bytes),
            Endian::Big => u64::from_be_bytes(bytes),
        })
    }

    /// The address (4 or 8 bytes, by class) at `offset`, if `data` holds it.
    pub fn address(self, data: &[u8], offset: usize) -> Option<u64> {
        if self.is_64 {
            self.u64(data, offset)
        } else {
            self.u32(data, offset).map(u64::from)
        }
    }
}

/// The bytes of the NUL-terminated string starting at `offset` (without the
/// NUL), or `None` when `offset` is out of range or no NUL follows.
pub(crate) fn cstr_at(data: &[u8], offset: usize) -> Option<&[u8]> {
    let rest = data.get(offset..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders_and_widths() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let le = Layout::LE64;
        let be32 = Layout {
            endian: Endian::Big,
            is_64: false,
        };
        assert_eq!(le.u16(&data, 0), Some(0x0201));
        assert_eq!(be32.u16(&data, 0), Some(0x0102));
        assert_eq!(le.u32(&data, 1), Some(0x05040302));
        assert_eq!(be32.u32(&data, 1), Some(0x02030405));
        assert_eq!(le.address(&data, 1), Some(0x0908070605040302));
        assert_eq!(be32.address(&data, 5), Some(0x06070809));
        assert_eq!(le.u64(&data, 2), None);
        assert_eq!(le.u16(&data, usize::MAX), None);
        assert_eq!(be32.address_size(), 4);
    }

    #[test]
    fn c_strings() {
        let data = b"abc\0de\0f";
        assert_eq!(cstr_at(data, 0), Some(&b"abc"[..]));
        assert_eq!(cstr_at(data, 3), Some(&b""[..]));
        assert_eq!(cstr_at(data, 4), Some(&b"de"[..]));
        assert_eq!(cstr_at(data, 7), None);
        assert_eq!(cstr_at(data, 100), None);
    }
}
