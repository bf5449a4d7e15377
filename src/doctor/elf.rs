//! A small, bounds-checked ELF64 reader: just enough to list what a binary or shared library
//! asks the dynamic loader for (DT_NEEDED) and where it says to look (DT_RUNPATH/DT_RPATH),
//! read from the PT_DYNAMIC segment and the string table it points to. No `ldd`: ldd may
//! run the binary's own loader, and knockwrap should never execute what it inspects. Every
//! offset comes from the file and is checked before use; a malformed file is an [`ElfError`],
//! never a panic.

/// What the dynamic section says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dynamic {
    /// `e_machine`, to pick libraries of the same architecture.
    pub machine: u16,
    /// DT_NEEDED names, in order.
    pub needed: Vec<String>,
    /// DT_RUNPATH (or, without it, DT_RPATH) directories, `$ORIGIN` not yet expanded.
    pub search: Vec<String>,
    /// False for a statically linked file (no PT_DYNAMIC).
    pub dynamic: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("a 32-bit ELF file (only ELF64 is read)")]
    Elf32,
    #[error("unknown ELF byte order {0}")]
    ByteOrder(u8),
    #[error("truncated or corrupt ELF file: {0}")]
    Corrupt(&'static str),
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

struct Reader<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn slice(&self, at: u64, len: u64, what: &'static str) -> Result<&[u8], ElfError> {
        let start = usize::try_from(at).map_err(|_| ElfError::Corrupt(what))?;
        let len = usize::try_from(len).map_err(|_| ElfError::Corrupt(what))?;
        let end = start.checked_add(len).ok_or(ElfError::Corrupt(what))?;
        self.bytes.get(start..end).ok_or(ElfError::Corrupt(what))
    }

    fn u16(&self, at: u64, what: &'static str) -> Result<u16, ElfError> {
        let b: [u8; 2] = self.slice(at, 2, what)?.try_into().expect("2 bytes");
        Ok(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, at: u64, what: &'static str) -> Result<u32, ElfError> {
        let b: [u8; 4] = self.slice(at, 4, what)?.try_into().expect("4 bytes");
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn u64(&self, at: u64, what: &'static str) -> Result<u64, ElfError> {
        let b: [u8; 8] = self.slice(at, 8, what)?.try_into().expect("8 bytes");
        Ok(if self.little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
}

struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Reads the dynamic section of an ELF64 file.
pub fn parse(bytes: &[u8]) -> Result<Dynamic, ElfError> {
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    match bytes[4] {
        2 => {}
        1 => return Err(ElfError::Elf32),
        _ => return Err(ElfError::NotElf),
    }
    let little = match bytes[5] {
        1 => true,
        2 => false,
        other => return Err(ElfError::ByteOrder(other)),
    };
    let r = Reader { bytes, little };
    let machine = r.u16(18, "header")?;
    let phoff = r.u64(32, "header")?;
    let phentsize = u64::from(r.u16(54, "header")?);
    let phnum = u64::from(r.u16(56, "header")?);
    if phnum > 0 && phentsize < 56 {
        return Err(ElfError::Corrupt("program header size"));
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Corrupt("program headers"))?;
        segments.push(Segment {
            kind: r.u32(at, "program headers")?,
            offset: r.u64(at + 8, "program headers")?,
            vaddr: r.u64(at + 16, "program headers")?,
            filesz: r.u64(at + 32, "program headers")?,
        });
    }
    let Some(dynseg) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Ok(Dynamic {
            machine,
            needed: Vec::new(),
            search: Vec::new(),
            dynamic: false,
        });
    };
    // Checks the whole table is in the file; offsets inside it cannot overflow after this.
    r.slice(dynseg.offset, dynseg.filesz, "dynamic section")?;
    let mut entries = Vec::new();
    for i in 0..dynseg.filesz / 16 {
        let at = dynseg.offset + i * 16;
        let tag = r.u64(at, "dynamic section")?;
        let val = r.u64(at + 8, "dynamic section")?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, val));
    }
    let find = |t: u64| entries.iter().find(|(tag, _)| *tag == t).map(|(_, v)| *v);
    let strtab_addr = find(DT_STRTAB).ok_or(ElfError::Corrupt("no string table"))?;
    let strsz = find(DT_STRSZ).ok_or(ElfError::Corrupt("no string table size"))?;
    let strtab_off = segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find(|s| strtab_addr >= s.vaddr && strtab_addr - s.vaddr < s.filesz)
        .map(|s| s.offset + (strtab_addr - s.vaddr))
        .ok_or(ElfError::Corrupt("string table outside the file"))?;
    let strtab = r.slice(strtab_off, strsz, "string table")?;
    let string = |at: u64| -> Result<String, ElfError> {
        let at = usize::try_from(at).map_err(|_| ElfError::Corrupt("string offset"))?;
        let rest = strtab.get(at..).ok_or(ElfError::Corrupt("string offset"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ElfError::Corrupt("unterminated string"))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let mut needed = Vec::new();
    let (mut runpath, mut rpath) = (None, None);
    for &(tag, val) in &entries {
        match tag {
            DT_NEEDED => needed.push(string(val)?),
            DT_RUNPATH => runpath = Some(string(val)?),
            DT_RPATH => rpath = Some(string(val)?),
            _ => {}
        }
    }
    let search = runpath
        .or(rpath)
        .map(|p| {
            p.split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Dynamic {
        machine,
        needed,
        search,
        dynamic: true,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 with one PT_LOAD covering the file and a PT_DYNAMIC.
    pub(crate) fn tiny(needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut offs = Vec::new();
        for n in needed.iter().copied().chain(runpath) {
            offs.push(strtab.len() as u64);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let phoff = 64u64;
        let dyn_off = phoff + 2 * 56;
        let mut dynamic: Vec<(u64, u64)> = needed
            .iter()
            .enumerate()
            .map(|(i, _)| (DT_NEEDED, offs[i]))
            .collect();
        if runpath.is_some() {
            dynamic.push((DT_RUNPATH, *offs.last().unwrap()));
        }
        let str_off = dyn_off + (dynamic.len() as u64 + 3) * 16;
        dynamic.push((DT_STRTAB, str_off));
        dynamic.push((DT_STRSZ, strtab.len() as u64));
        dynamic.push((DT_NULL, 0));
        let total = str_off + strtab.len() as u64;
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&phoff.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&2u16.to_le_bytes());
        for (kind, off, size) in [
            (PT_LOAD, 0, total),
            (PT_DYNAMIC, dyn_off, (dynamic.len() * 16) as u64),
        ] {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[16..24].copy_from_slice(&off.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            ph[40..48].copy_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&ph);
        }
        for (t, v) in dynamic {
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&strtab);
        assert_eq!(b.len() as u64, total);
        b
    }

    #[test]
    fn reads_needed_and_runpath() {
        let b = tiny(
            &["libwrap.so.0", "libc.so.6"],
            Some("$ORIGIN/../lib:/opt/x"),
        );
        let d = parse(&b).unwrap();
        assert_eq!(d.needed, ["libwrap.so.0", "libc.so.6"]);
        assert_eq!(d.search, ["$ORIGIN/../lib", "/opt/x"]);
        assert_eq!(d.machine, 62);
        assert!(d.dynamic);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = tiny(&["libwrap.so.0"], None);
        for len in 0..b.len() {
            let _ = parse(&b[..len]);
        }
        assert_eq!(parse(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf);
        let mut e32 = b.clone();
        e32[4] = 1;
        assert_eq!(parse(&e32).unwrap_err(), ElfError::Elf32);
    }

    #[test]
    fn corrupt_offsets_are_errors() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let base = tiny(&["libwrap.so.0", "libc.so.6"], Some("/x"));
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..4 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng % b.len() as u64) as usize;
                b[i] = (rng >> 32) as u8;
            }
            let _ = parse(&b);
        }
        let mut b = base.clone();
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&b), Err(ElfError::Corrupt(_))));
    }
}
