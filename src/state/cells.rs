//! A mirror row's stored form inside its bucket (`rows.rs`): its cells in a compact binary form
//! (layout 8), or the JSON array that layouts 3–7 wrote, which still reads.
//!
//! Why: a first run stores every row of the export (500,500 at L), and writing them as JSON —
//! quoting and escaping every cell — was most of the checkpoint writer's own work (0.8 CPU-s at
//! L); a point read of a row parsed that JSON back. Here a cell is a tag and length-prefixed
//! UTF-8, copied as it is both ways.
//!
//! The form: [`BINARY`], then each cell as a tag — [`NULL`], [`STR`] and a string, [`LIST`] and a
//! count of strings, [`MEDIA`] and a count of entries, each a count of strings — where a string
//! is its length (LEB128) and its bytes, and a count is LEB128. An `Unchanged` cell is stored as
//! `NULL`, as JSON stored it (`null`).

use std::borrow::Cow;

use super::binary::{put_len, put_str, put_strs, Reader};
use crate::model::source::Cell;

/// The first byte of a row in this form (a JSON row starts with `[`).
const BINARY: u8 = 0xB2;

const NULL: u8 = 0;
const STR: u8 = 1;
const LIST: u8 = 2;
const MEDIA: u8 = 3;

/// The stored form of a row's cells.
pub(super) fn encode(cells: &[Cell]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + cells.len() * 12);
    out.push(BINARY);
    for cell in cells {
        match cell {
            Cell::Null | Cell::Unchanged => out.push(NULL),
            Cell::Str(s) => {
                out.push(STR);
                put_str(&mut out, s);
            }
            Cell::List(items) => {
                out.push(LIST);
                put_strs(&mut out, items);
            }
            Cell::Media(entries) => {
                out.push(MEDIA);
                put_len(&mut out, entries.len());
                for entry in entries.iter() {
                    put_strs(&mut out, entry);
                }
            }
        }
    }
    out
}

/// A stored row's cells, in either form.
pub(super) fn decode(raw: &[u8]) -> Result<Vec<Cell>, String> {
    let Some((&BINARY, rest)) = raw.split_first() else {
        return serde_json::from_slice(raw).map_err(|e| e.to_string());
    };
    let mut r = Reader::new(rest);
    let mut cells = Vec::new();
    while let Some(tag) = r.byte() {
        cells.push(match tag {
            NULL => Cell::Null,
            STR => Cell::Str(r.str()?.into()),
            LIST => Cell::List(r.strs()?),
            MEDIA => {
                let n = r.len()?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(r.strs()?);
                }
                Cell::Media(entries.into_boxed_slice())
            }
            other => return Err(format!("a cell of unknown form {other}")),
        });
    }
    Ok(cells)
}

/// The text of a stored row's cell `col` (as [`Cell::text`] gives it; `None`: the row has no
/// such cell), skipping the cells before it undecoded: a bucket read for some products' variants
/// looks at each row's product before decoding the few it keeps.
pub(super) fn text_at(raw: &[u8], col: usize) -> Result<Option<Cow<'_, str>>, String> {
    let Some((&BINARY, rest)) = raw.split_first() else {
        let cells = decode(raw)?;
        return Ok(cells.get(col).map(|c| Cow::Owned(c.text().into_owned())));
    };
    let mut r = Reader::new(rest);
    for at in 0.. {
        let Some(tag) = r.byte() else { return Ok(None) };
        let here = at == col;
        match tag {
            NULL if here => return Ok(Some(Cow::Borrowed(""))),
            NULL => {}
            STR if here => return Ok(Some(Cow::Borrowed(r.str()?))),
            STR => drop(r.str()?),
            LIST if here => return Ok(Some(Cow::Owned(r.strs()?.join(",")))),
            LIST => drop(r.strs()?),
            MEDIA => {
                for _ in 0..r.len()? {
                    r.strs()?;
                }
                if here {
                    return Ok(Some(Cow::Borrowed("")));
                }
            }
            other => return Err(format!("a cell of unknown form {other}")),
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(items: &[&str]) -> Box<[Box<str>]> {
        items.iter().map(|s| Box::from(*s)).collect()
    }

    fn every_kind() -> Vec<Cell> {
        vec![
            Cell::Str("1042".into()),
            Cell::Null,
            Cell::Str(String::new().into()),
            Cell::Str("Camisa \"azul\" — talla M, 100 % algodón\n".repeat(8).into()),
            Cell::List(strs(&["3", "17"])),
            Cell::List(strs(&[])),
            Cell::Media(vec![strs(&["A", "img-1", "https://cdn.example/1.jpg"]), strs(&[])].into_boxed_slice()),
            Cell::Unchanged,
        ]
    }

    #[test]
    fn a_row_reads_back_as_written_and_a_json_row_of_an_older_layout_still_reads() {
        let cells = every_kind();
        let bytes = encode(&cells);
        // `Unchanged` comes back as `Null`, as it did from JSON.
        let mut read = cells.clone();
        read[7] = Cell::Null;
        assert_eq!(decode(&bytes).unwrap(), read);
        assert_eq!(decode(&encode(&[])).unwrap(), []);
        // JSON as layouts 3–7 stored rows.
        let json = serde_json::to_vec(&cells).unwrap();
        assert_eq!(decode(&json).unwrap(), read);
        assert!(bytes.len() < json.len());
    }

    /// A cell read on its own is the cell's text as the whole row decodes, in either form.
    #[test]
    fn one_cell_reads_as_the_decoded_rows_cell() {
        let cells = every_kind();
        for raw in [encode(&cells), serde_json::to_vec(&cells).unwrap()] {
            let whole = decode(&raw).unwrap();
            for col in 0..=cells.len() {
                let expected = whole.get(col).map(|c| c.text().into_owned());
                assert_eq!(text_at(&raw, col).unwrap().map(Cow::into_owned), expected, "cell {col}");
            }
        }
        assert!(text_at(&[BINARY, 9], 0).is_err());
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_shorter_row() {
        let bytes = encode(&every_kind());
        // A cut between two cells reads as fewer cells (the bucket's container gives each row
        // its exact length, so that cut cannot come from storage); any other cut is an error.
        let boundaries: Vec<usize> = (0..=every_kind().len()).map(|n| encode(&every_kind()[..n]).len()).collect();
        for cut in 1..bytes.len() {
            assert_eq!(decode(&bytes[..cut]).is_ok(), boundaries.contains(&cut), "cut at {cut}");
        }
        for bad in
            [vec![BINARY, 9], vec![BINARY, STR, 5, b'a'], vec![BINARY, STR, 2, 0xff, 0xfe], vec![BINARY, LIST, 0xff]]
        {
            assert!(decode(&bad).is_err(), "{bad:?}");
        }
    }
}
