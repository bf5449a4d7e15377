//! Classic BPF: instruction encoding and a small assembler with forward labels.
//!
//! Conditional jumps in cBPF carry 8-bit offsets. The assembler lets the code generator name
//! any forward label and relaxes each too-far conditional target into a trampoline (`ja` has a
//! 32-bit offset), so the generated program is correct whatever the number of ports.

use thiserror::Error;

/// One cBPF instruction, laid out exactly like the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// The kernel's limit on program length (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

// Instruction classes and fields (linux/bpf_common.h).
pub const LD: u16 = 0x00;
pub const LDX: u16 = 0x01;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
pub const MISC: u16 = 0x07;
pub const W: u16 = 0x00;
pub const H: u16 = 0x08;
pub const B: u16 = 0x10;
pub const IMM: u16 = 0x00;
pub const ABS: u16 = 0x20;
pub const IND: u16 = 0x40;
pub const MSH: u16 = 0xa0;
pub const ADD: u16 = 0x00;
pub const AND: u16 = 0x50;
pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JGT: u16 = 0x20;
pub const JGE: u16 = 0x30;
pub const JSET: u16 = 0x40;
pub const K: u16 = 0x00;
pub const TAX: u16 = 0x00;
pub const TXA: u16 = 0x80;

/// Start of the kernel's ancillary-data load area (`SKF_AD_OFF`, i.e. -0x1000 as u32).
pub const SKF_AD_OFF: u32 = 0xffff_f000;
/// Ancillary offset of the packet type (`SKF_AD_PKTTYPE`).
pub const SKF_AD_PKTTYPE: u32 = 4;
/// `PACKET_OUTGOING`: a frame this host is sending.
pub const PACKET_OUTGOING: u32 = 4;

/// Where a jump goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The next instruction (offset 0).
    Next,
    Label(Label),
}

/// A forward label handed out by [`Asm::label`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AsmError {
    #[error("label {0} is used but never placed")]
    Unplaced(usize),
    #[error("label {0} is placed twice")]
    PlacedTwice(usize),
    #[error("jump to label {0} goes backwards")]
    Backward(usize),
    #[error("program has {0} instructions, more than the kernel's {BPF_MAXINSNS}")]
    TooLong(usize),
    #[error("program does not end with a return")]
    NoFinalReturn,
}

#[derive(Clone, Debug)]
enum Item {
    Plain(Insn),
    Cond {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ja(Target),
    Place(Label),
}

/// Collects instructions and labels, then lays them out with [`Asm::finish`].
#[derive(Debug, Default)]
pub struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub fn place(&mut self, label: Label) {
        self.items.push(Item::Place(label));
    }

    /// A non-jump instruction.
    pub fn stmt(&mut self, code: u16, k: u32) {
        self.items.push(Item::Plain(Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    /// A conditional jump `JMP|op|K` comparing A with `k`.
    pub fn jump(&mut self, op: u16, k: u32, jt: Target, jf: Target) {
        self.items.push(Item::Cond {
            code: JMP | op | K,
            k,
            jt,
            jf,
        });
    }

    pub fn ja(&mut self, to: Target) {
        self.items.push(Item::Ja(to));
    }

    pub fn ret(&mut self, k: u32) {
        self.stmt(RET | K, k);
    }

    /// Lays the program out. Conditional targets beyond 255 instructions become trampolines;
    /// sizes only grow, so the fixpoint loop terminates.
    pub fn finish(&self) -> Result<Vec<Insn>, AsmError> {
        // Per conditional item: (long_true, long_false).
        let mut long = vec![(false, false); self.items.len()];
        loop {
            let pos = self.positions(&long)?;
            // Decide every widening against this one layout, then apply them together.
            let mut widen = Vec::new();
            let mut at = 0usize;
            for (idx, item) in self.items.iter().enumerate() {
                if let Item::Cond { jt, jf, .. } = item {
                    if !long[idx].0 && distance(&pos, at + 1, *jt)? > 255 {
                        widen.push((idx, true));
                    }
                    if !long[idx].1 && distance(&pos, at + 1, *jf)? > 255 {
                        widen.push((idx, false));
                    }
                }
                at += item_len(item, long[idx]);
            }
            if widen.is_empty() {
                return self.emit(&pos, &long);
            }
            for (idx, is_t) in widen {
                if is_t {
                    long[idx].0 = true;
                } else {
                    long[idx].1 = true;
                }
            }
        }
    }

    fn positions(&self, long: &[(bool, bool)]) -> Result<Vec<Option<usize>>, AsmError> {
        let mut pos = vec![None; self.labels];
        let mut at = 0usize;
        for (idx, item) in self.items.iter().enumerate() {
            if let Item::Place(Label(l)) = item {
                if pos[*l].is_some() {
                    return Err(AsmError::PlacedTwice(*l));
                }
                pos[*l] = Some(at);
            }
            at += item_len(item, long[idx]);
        }
        Ok(pos)
    }

    fn emit(&self, pos: &[Option<usize>], long: &[(bool, bool)]) -> Result<Vec<Insn>, AsmError> {
        let mut out: Vec<Insn> = Vec::new();
        for (idx, item) in self.items.iter().enumerate() {
            match item {
                Item::Plain(insn) => out.push(*insn),
                Item::Place(_) => {}
                Item::Ja(to) => {
                    let here = out.len();
                    let k = distance(pos, here + 1, *to)?;
                    out.push(Insn {
                        code: JMP | JA,
                        jt: 0,
                        jf: 0,
                        k: k as u32,
                    });
                }
                Item::Cond { code, k, jt, jf } => {
                    let here = out.len();
                    let (lt, lf) = long[idx];
                    // Trampolines sit right after the conditional: [cond][ja T]?[ja F]?
                    // `Next` means after the trampolines, which labels account for already.
                    let skip = usize::from(lt) + usize::from(lf);
                    let short = |t: Target| match t {
                        Target::Next => Ok(skip),
                        label => distance(pos, here + 1, label),
                    };
                    let t_off = if lt { 0 } else { short(*jt)? };
                    let f_off = if lf { usize::from(lt) } else { short(*jf)? };
                    out.push(Insn {
                        code: *code,
                        jt: t_off as u8,
                        jf: f_off as u8,
                        k: *k,
                    });
                    for (is_long, target) in [(lt, jt), (lf, jf)] {
                        if is_long {
                            let at = out.len();
                            let k = distance(pos, at + 1, *target)?;
                            out.push(Insn {
                                code: JMP | JA,
                                jt: 0,
                                jf: 0,
                                k: k as u32,
                            });
                        }
                    }
                }
            }
        }
        if out.len() > BPF_MAXINSNS {
            return Err(AsmError::TooLong(out.len()));
        }
        match out.last() {
            Some(last) if last.code & 0x07 == RET => Ok(out),
            _ => Err(AsmError::NoFinalReturn),
        }
    }
}

fn item_len(item: &Item, long: (bool, bool)) -> usize {
    match item {
        Item::Place(_) => 0,
        Item::Cond { .. } => 1 + usize::from(long.0) + usize::from(long.1),
        _ => 1,
    }
}

/// Offset from the instruction at `from` (pc + 1) to `target`.
fn distance(pos: &[Option<usize>], from: usize, target: Target) -> Result<usize, AsmError> {
    match target {
        Target::Next => Ok(0),
        Target::Label(Label(l)) => {
            let at = pos[l].ok_or(AsmError::Unplaced(l))?;
            at.checked_sub(from).ok_or(AsmError::Backward(l))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jumps_are_direct() {
        let mut a = Asm::new();
        let done = a.label();
        a.stmt(LD | B | ABS, 0);
        a.jump(JEQ, 1, Target::Label(done), Target::Next);
        a.ret(0);
        a.place(done);
        a.ret(7);
        let p = a.finish().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!((p[1].jt, p[1].jf), (1, 0));
    }

    #[test]
    fn far_targets_get_trampolines_that_land_right() {
        let mut a = Asm::new();
        let far = a.label();
        let near = a.label();
        a.jump(JEQ, 1, Target::Label(far), Target::Label(near));
        a.place(near);
        for _ in 0..300 {
            a.stmt(LD | IMM, 0);
        }
        a.place(far);
        a.ret(9);
        let p = a.finish().unwrap();
        // cond + one trampoline for the true side.
        assert_eq!(p.len(), 1 + 1 + 300 + 1);
        assert_eq!((p[0].jt, p[0].jf), (0, 1));
        assert_eq!(p[1].code, JMP | JA);
        assert_eq!(2 + p[1].k as usize, p.len() - 1);
    }

    #[test]
    fn both_sides_far() {
        let mut a = Asm::new();
        let t = a.label();
        let f = a.label();
        a.jump(JEQ, 1, Target::Label(t), Target::Label(f));
        for _ in 0..300 {
            a.stmt(LD | IMM, 0);
        }
        a.place(t);
        a.ret(1);
        for _ in 0..300 {
            a.stmt(LD | IMM, 0);
        }
        a.place(f);
        a.ret(2);
        let p = a.finish().unwrap();
        assert_eq!((p[0].jt, p[0].jf), (0, 1));
        assert_eq!(p[2 + p[1].k as usize].k, 1);
        assert_eq!(p[3 + p[2].k as usize].k, 2);
    }

    #[test]
    fn next_skips_the_trampoline() {
        for far_on_true in [true, false] {
            let mut a = Asm::new();
            let far = a.label();
            a.stmt(LD | B | ABS, 0);
            if far_on_true {
                a.jump(JEQ, 1, Target::Label(far), Target::Next);
            } else {
                a.jump(JEQ, 1, Target::Next, Target::Label(far));
            }
            a.ret(2);
            for _ in 0..300 {
                a.stmt(LD | IMM, 0);
            }
            a.place(far);
            a.ret(3);
            let p = a.finish().unwrap();
            let (hit, miss) = if far_on_true { (3, 2) } else { (2, 3) };
            assert_eq!(crate::vm::run(&p, &[1], 0), Ok(hit));
            assert_eq!(crate::vm::run(&p, &[0], 0), Ok(miss));
        }
    }

    #[test]
    fn errors() {
        let mut a = Asm::new();
        let l = a.label();
        a.ja(Target::Label(l));
        a.ret(0);
        assert_eq!(a.finish(), Err(AsmError::Unplaced(0)));
        let mut a = Asm::new();
        let l = a.label();
        a.place(l);
        a.ret(0);
        a.ja(Target::Label(l));
        assert_eq!(a.finish(), Err(AsmError::Backward(0)));
        let mut a = Asm::new();
        a.stmt(LD | IMM, 0);
        assert_eq!(a.finish(), Err(AsmError::NoFinalReturn));
    }
}
