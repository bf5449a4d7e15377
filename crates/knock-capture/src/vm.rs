//! Test-only cBPF interpreter with the kernel's semantics for the instructions the generator
//! uses: out-of-bounds packet loads end the program with 0 (drop), ancillary loads give the
//! packet type. Also a structural check like the kernel's `bpf_check_classic`.

use crate::bpf::{self, Insn};

#[derive(Debug, PartialEq, Eq)]
pub enum VmError {
    Unsupported(u16),
    JumpOutOfRange(usize),
    FellOffEnd,
    Empty,
    TooLong,
}

/// Reject what the kernel would refuse at `SO_ATTACH_FILTER` time.
pub fn check(prog: &[Insn]) -> Result<(), VmError> {
    if prog.is_empty() {
        return Err(VmError::Empty);
    }
    if prog.len() > bpf::BPF_MAXINSNS {
        return Err(VmError::TooLong);
    }
    for (pc, i) in prog.iter().enumerate() {
        if i.code & 0x07 == bpf::JMP {
            let targets: Vec<usize> = if i.code & 0xf0 == bpf::JA {
                vec![pc + 1 + i.k as usize]
            } else {
                vec![pc + 1 + i.jt as usize, pc + 1 + i.jf as usize]
            };
            if targets.iter().any(|&t| t >= prog.len()) {
                return Err(VmError::JumpOutOfRange(pc));
            }
        }
    }
    if prog[prog.len() - 1].code & 0x07 != bpf::RET {
        return Err(VmError::FellOffEnd);
    }
    Ok(())
}

fn load(pkt: &[u8], off: u32, size: u16, pkttype: u32) -> Option<u32> {
    if off >= bpf::SKF_AD_OFF {
        return match off - bpf::SKF_AD_OFF {
            bpf::SKF_AD_PKTTYPE if size == bpf::W => Some(pkttype),
            _ => None,
        };
    }
    let off = off as usize;
    let n = match size {
        bpf::W => 4,
        bpf::H => 2,
        _ => 1,
    };
    let bytes = pkt.get(off..off.checked_add(n)?)?;
    Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// Run `prog` on `pkt` whose packet type (`PACKET_HOST`, `PACKET_OUTGOING`...) is `pkttype`.
pub fn run(prog: &[Insn], pkt: &[u8], pkttype: u32) -> Result<u32, VmError> {
    check(prog)?;
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let i = *prog.get(pc).ok_or(VmError::FellOffEnd)?;
        pc += 1;
        let class = i.code & 0x07;
        match class {
            bpf::LD => {
                let size = i.code & 0x18;
                let mode = i.code & 0xe0;
                a = match mode {
                    bpf::IMM => i.k,
                    bpf::ABS => match load(pkt, i.k, size, pkttype) {
                        Some(v) => v,
                        None => return Ok(0),
                    },
                    bpf::IND => match load(pkt, x.wrapping_add(i.k), size, pkttype) {
                        Some(v) => v,
                        None => return Ok(0),
                    },
                    0x60 => mem[(i.k & 15) as usize],
                    _ => return Err(VmError::Unsupported(i.code)),
                };
            }
            bpf::LDX => {
                x = match i.code & 0xe0 {
                    bpf::IMM => i.k,
                    bpf::MSH => match pkt.get(i.k as usize) {
                        Some(b) => u32::from(b & 0x0f) * 4,
                        None => return Ok(0),
                    },
                    _ => return Err(VmError::Unsupported(i.code)),
                };
            }
            0x02 => mem[(i.k & 15) as usize] = a,
            0x03 => mem[(i.k & 15) as usize] = x,
            bpf::ALU => {
                let operand = if i.code & 0x08 != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    bpf::ADD => a.wrapping_add(operand),
                    0x10 => a.wrapping_sub(operand),
                    bpf::AND => a & operand,
                    0x40 => a | operand,
                    _ => return Err(VmError::Unsupported(i.code)),
                };
            }
            bpf::JMP => {
                let op = i.code & 0xf0;
                if op == bpf::JA {
                    pc += i.k as usize;
                    continue;
                }
                let operand = if i.code & 0x08 != 0 { x } else { i.k };
                let taken = match op {
                    bpf::JEQ => a == operand,
                    bpf::JGT => a > operand,
                    bpf::JGE => a >= operand,
                    bpf::JSET => a & operand != 0,
                    _ => return Err(VmError::Unsupported(i.code)),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            bpf::RET => return Ok(if i.code & 0x18 == 0x10 { a } else { i.k }),
            bpf::MISC => {
                if i.code & 0xf8 == bpf::TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return Err(VmError::Unsupported(i.code)),
        }
    }
}
