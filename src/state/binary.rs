//! The pieces of catsync's compact binary values in the state (mirror rows, `cells.rs`; export
//! records, `record_form.rs`): LEB128 lengths and counts, length-prefixed UTF-8, and a reader
//! that refuses a damaged value instead of reading past it.

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_strs(out: &mut Vec<u8>, items: &[Box<str>]) {
    put_len(out, items.len());
    for s in items {
        put_str(out, s);
    }
}

/// A length or count as LEB128 (7 bits a byte, low bits first).
pub(super) fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) struct Reader<'b> {
    rest: &'b [u8],
}

impl<'b> Reader<'b> {
    pub(super) fn new(rest: &'b [u8]) -> Reader<'b> {
        Reader { rest }
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    /// A length or count; never more than the bytes left (each counted item takes one at least),
    /// so a damaged one cannot make a large allocation.
    pub(super) fn len(&mut self) -> Result<usize, String> {
        let mut n: usize = 0;
        for shift in (0..usize::BITS).step_by(7) {
            let b = self.byte().ok_or("a truncated value")?;
            if shift + 7 > usize::BITS && b > 1 {
                return Err("a value with a length too long".into());
            }
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return if n <= self.rest.len() {
                    Ok(n)
                } else {
                    Err(format!("a value claiming {n} bytes or items past its end"))
                };
            }
        }
        Err("a value with a length too long".into())
    }

    pub(super) fn str(&mut self) -> Result<&'b str, String> {
        let n = self.len()?;
        let (bytes, rest) = self.rest.split_at(n);
        self.rest = rest;
        std::str::from_utf8(bytes).map_err(|e| format!("text: {e}"))
    }

    /// `n` bytes as they are.
    pub(super) fn bytes(&mut self, n: usize) -> Result<&'b [u8], String> {
        if n > self.rest.len() {
            return Err("a truncated value".into());
        }
        let (bytes, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(bytes)
    }

    /// Whether every byte was read.
    pub(super) fn is_done(&self) -> bool {
        self.rest.is_empty()
    }

    pub(super) fn strs(&mut self) -> Result<Box<[Box<str>]>, String> {
        let n = self.len()?;
        (0..n).map(|_| self.str().map(Box::from)).collect()
    }
}
