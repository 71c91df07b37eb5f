//! A tiny CSV log: a header, then one row per epoch, appended and flushed at once so a killed
//! run keeps every finished epoch.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ReportError;

/// One CSV field.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Num(f64),
    Int(i64),
    Text(String),
}

impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        Cell::Num(v)
    }
}

impl From<f32> for Cell {
    fn from(v: f32) -> Cell {
        Cell::Num(v as f64)
    }
}

impl From<usize> for Cell {
    fn from(v: usize) -> Cell {
        Cell::Int(v as i64)
    }
}

impl From<u64> for Cell {
    fn from(v: u64) -> Cell {
        Cell::Int(v as i64)
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Cell {
        Cell::Int(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Cell {
        Cell::Text(v.to_string())
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Cell {
        Cell::Text(v)
    }
}

impl Cell {
    /// The field as CSV text: numbers in Rust's shortest round-trip form, text quoted when it
    /// holds a comma, quote or line break.
    fn to_field(&self) -> String {
        match self {
            Cell::Num(v) => format!("{v}"),
            Cell::Int(v) => format!("{v}"),
            Cell::Text(s) if s.contains([',', '"', '\n', '\r']) => format!("\"{}\"", s.replace('"', "\"\"")),
            Cell::Text(s) => s.clone(),
        }
    }
}

/// An append-only CSV file with a fixed header.
#[derive(Debug, Clone)]
pub struct CsvLog {
    path: PathBuf,
    columns: usize,
}

impl CsvLog {
    /// Opens `path` for appending rows under `header`. A new or empty file gets the header; an
    /// existing one must already have the same header (resuming a run), else it is an error.
    pub fn open(path: &Path, header: &[&str]) -> Result<CsvLog, ReportError> {
        let io = |source| ReportError::Io { path: path.to_path_buf(), source };
        let line = header.iter().map(|h| Cell::from(*h).to_field()).collect::<Vec<_>>().join(",");
        let existing = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        match existing.lines().next() {
            None => std::fs::write(path, format!("{line}\n")).map_err(io)?,
            Some(found) if found == line => {}
            Some(found) => {
                return Err(ReportError::CsvHeader { path: path.to_path_buf(), found: found.into(), expected: line })
            }
        }
        Ok(CsvLog { path: path.to_path_buf(), columns: header.len() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row (opens, appends, flushes, closes). Panics if the row's length differs
    /// from the header's, which is a programming error.
    pub fn append(&self, row: &[Cell]) -> Result<(), ReportError> {
        assert_eq!(row.len(), self.columns, "CSV row length differs from the header of {}", self.path.display());
        let io = |source| ReportError::Io { path: self.path.clone(), source };
        let line = row.iter().map(Cell::to_field).collect::<Vec<_>>().join(",");
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(io)?;
        f.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        f.flush().map_err(io)
    }
}

/// Reads a CSV file written by [`CsvLog`]: the header and the rows as strings.
pub fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
    let mut records = parse(&text).into_iter();
    let header = records.next().unwrap_or_default();
    Ok((header, records.collect()))
}

/// RFC 4180 records: quoted fields may hold commas, doubled quotes and line breaks.
fn parse(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}
