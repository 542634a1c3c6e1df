//! The pieces of catsync's compact binary values in the state (mirror rows, `cells.rs`; export
//! records, `record_form.rs`; index buckets, `index_form.rs`): hashes as their bytes, LEB128
//! lengths and counts, length-prefixed UTF-8, and a reader that refuses a damaged value instead
//! of reading past it.

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

/// A hash byte announcing text rather than hex bytes.
const TEXT_HASH: u8 = 0x80;

/// A hash: below [`TEXT_HASH`], the number of bytes of lowercase hex that follow as bytes, or
/// [`TEXT_HASH`] and text that is not such hex.
pub(super) fn put_hash(out: &mut Vec<u8>, hash: &str) {
    if hash.len() % 2 == 0 && hash.len() < 2 * usize::from(TEXT_HASH) && put_hex(out, hash) {
        return;
    }
    out.push(TEXT_HASH);
    put_str(out, hash);
}

/// Writes lowercase hex as its length in bytes and the bytes, decoded in place (a record holds a
/// dozen hashes, written a batch at a time); `false`, with nothing written, when it is not.
fn put_hex(out: &mut Vec<u8>, hash: &str) -> bool {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let start = out.len();
    out.push((hash.len() / 2) as u8);
    for pair in hash.as_bytes().chunks_exact(2) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            _ => {
                out.truncate(start);
                return false;
            }
        }
    }
    true
}

pub(super) fn read_hash(r: &mut Reader<'_>) -> Result<String, String> {
    match r.byte().ok_or("a truncated value")? {
        TEXT_HASH => Ok(r.str()?.to_string()),
        n if n < TEXT_HASH => Ok(hex::encode(r.bytes(usize::from(n))?)),
        other => Err(format!("a hash of unknown form {other:#x}")),
    }
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
