//! `type: csv` and `type: jsonl` — keyed tables (an ERP price and stock list by SKU) that a
//! `join` stage merges into the catalog. At compile time the header (or first line) gives the columns.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Output, StageCx};
use crate::diagnostics::did_you_mean;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    pub path: String,
    pub key: String,
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
}

fn default_delimiter() -> String {
    ",".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    pub path: String,
    pub key: String,
}

/// The file format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv { delimiter: u8 },
    Jsonl,
}

/// A compiled table source.
#[derive(Debug, Clone)]
pub struct TableSource {
    pub path: PathBuf,
    pub key: String,
    pub format: TableFormat,
    pub columns: Option<BTreeSet<String>>,
}

pub fn compile_csv(cfg: &CsvConfig, cx: &mut StageCx) -> (Option<TableSource>, Output) {
    let delimiter = match cfg.delimiter.as_bytes() {
        [b] => *b,
        _ => {
            cx.error("delimiter", "the delimiter must be a single ASCII character", None);
            b','
        }
    };
    compile_table(&cfg.path, &cfg.key, TableFormat::Csv { delimiter }, cx)
}

pub fn compile_jsonl(cfg: &JsonlConfig, cx: &mut StageCx) -> (Option<TableSource>, Output) {
    compile_table(&cfg.path, &cfg.key, TableFormat::Jsonl, cx)
}

fn compile_table(path: &str, key: &str, format: TableFormat, cx: &mut StageCx) -> (Option<TableSource>, Output) {
    let Some(full) = cx.path("path", path) else { return (None, Output::Table { columns: None }) };
    let columns = match read_columns(&full, format) {
        Ok(cols) => Some(cols),
        Err(e) => {
            cx.error(
                "path",
                format!("cannot read `{path}`: {e}"),
                Some("paths are relative to the pipeline file".to_string()),
            );
            None
        }
    };
    if let Some(cols) = &columns {
        if !cols.contains(key) {
            let hint = did_you_mean(key, cols.iter().map(String::as_str)).or_else(|| {
                Some(format!(
                    "the columns are {}",
                    cols.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ))
            });
            cx.error("key", format!("key column `{key}` is not in `{path}`"), hint);
        }
    }
    let source = TableSource { path: full, key: key.to_string(), format, columns: columns.clone() };
    (Some(source), Output::Table { columns })
}

/// The column names: the CSV header, or the keys of the first JSONL object.
fn read_columns(path: &Path, format: TableFormat) -> Result<BTreeSet<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut first = String::new();
    std::io::BufReader::new(file).read_line(&mut first).map_err(|e| e.to_string())?;
    let first = first.trim_end_matches(['\n', '\r']).trim_start_matches('\u{feff}');
    if first.is_empty() {
        return Err("the file is empty".to_string());
    }
    match format {
        TableFormat::Csv { delimiter } => Ok(first
            .split(delimiter as char)
            .map(|c| c.trim().trim_matches('"').to_string())
            .filter(|c| !c.is_empty())
            .collect()),
        TableFormat::Jsonl => {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(first).map_err(|e| format!("line 1 is not a JSON object: {e}"))?;
            Ok(v.keys().cloned().collect())
        }
    }
}

/// Why a table could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read `{path}`: {problem}")]
pub struct TableError {
    pub path: String,
    pub problem: String,
}

impl TableSource {
    /// Reads the whole table, keyed by the key column. Every row must have a unique, non-empty key.
    pub fn read(&self) -> Result<crate::catalog::Table, TableError> {
        use crate::stages::saleslayer::page::{Cell, Column};
        let err = |problem: String| TableError { path: self.path.display().to_string(), problem };
        let mut columns: Vec<String> = Vec::new();
        let mut rows: Vec<(usize, Vec<Cell>)> = Vec::new();
        match self.format {
            TableFormat::Csv { delimiter } => {
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .trim(csv::Trim::All)
                    .from_path(&self.path)
                    .map_err(|e| err(e.to_string()))?;
                columns = reader.headers().map_err(|e| err(e.to_string()))?.iter().map(str::to_string).collect();
                for (i, record) in reader.records().enumerate() {
                    let record = record.map_err(|e| err(format!("line {}: {e}", i + 2)))?;
                    rows.push((i + 2, record.iter().map(|v| Cell::Str(v.into())).collect()));
                }
            }
            TableFormat::Jsonl => {
                let text = std::fs::read_to_string(&self.path).map_err(|e| err(e.to_string()))?;
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let obj: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(line).map_err(|e| err(format!("line {}: {e}", i + 1)))?;
                    let mut cells = vec![Cell::Null; columns.len()];
                    for (k, v) in obj {
                        let pos = match columns.iter().position(|c| *c == k) {
                            Some(p) => p,
                            None => {
                                columns.push(k);
                                cells.push(Cell::Null);
                                columns.len() - 1
                            }
                        };
                        cells[pos] = match v {
                            serde_json::Value::Null => Cell::Null,
                            serde_json::Value::String(s) => Cell::Str(s.into()),
                            other => Cell::Str(other.to_string().into()),
                        };
                    }
                    rows.push((i + 1, cells));
                }
            }
        }
        let key =
            columns.iter().position(|c| *c == self.key).ok_or_else(|| err(format!("no key column `{}`", self.key)))?;
        let mut table = crate::catalog::Table::new(
            columns
                .iter()
                .map(|name| Column { name: name.clone(), basename: None, language: None, media_labels: None })
                .collect(),
        );
        for (line, mut cells) in rows {
            cells.resize(columns.len(), Cell::Null);
            let id = cells[key].text().into_owned();
            if id.is_empty() {
                return Err(err(format!("line {line}: the key `{}` is empty", self.key)));
            }
            if table.rows.insert(id.as_str().into(), std::sync::Arc::new(cells)).is_some() {
                return Err(err(format!("line {line}: key `{id}` appears twice")));
            }
        }
        Ok(table)
    }
}
