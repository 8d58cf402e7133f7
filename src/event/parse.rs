//! Reading events from files: CSV with a header, and JSON Lines.
//!
//! Both formats use the field names `event_id, customer_id, timestamp, kind, value, category,
//! item`. `customer_id`, `timestamp` and `kind` are required; the others may be absent or empty. A row
//! without an `event_id` gets [`Event::row_id`], a stable hash of its fields, so re-importing a
//! file is idempotent and an identical second row is reported as a duplicate.
//! `timestamp` is unix milliseconds or an RFC 3339 date-time. Other CSV columns and JSON fields
//! (an export's extra data, such as a `quantity` column) are ignored; the reader names them
//! ([`EventReader::ignored_fields`]) for the caller to report once.
//! Each row is parsed *and validated* ([`Event::validate`]) on its own: a bad row yields an
//! [`InvalidEvent`] carrying its line number and the reader moves on, so an import can continue
//! past rejects. Only a bad header or an I/O error ends the stream. Empty input (0 bytes) is a
//! stream of no rows in both formats.

pub use super::parse_timestamp;
use super::{Event, EventKind, InvalidEvent};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Longest accepted input line (JSON Lines) in bytes; longer lines are rejected, not buffered.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The bytes of `input` as an event file holds them: gzip-compressed input (recognised by its
/// magic number, whatever the file is called) is decompressed while it is read, anything else
/// passes through.
///
/// # Errors
/// An I/O error if the first bytes cannot be read.
///
/// # Examples
/// ```
/// use std::io::Read;
/// let mut text = String::new();
/// persona::testing::event::parse::decompressed(&b"event_id,customer_id"[..])?.read_to_string(&mut text)?;
/// assert_eq!(text, "event_id,customer_id");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn decompressed<'a, R: Read + Send + 'a>(
    input: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let mut buffered = BufReader::new(input);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Parses `csv` or `jsonl`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted values.
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            other => Err(Error::invalid_argument(
                "format",
                format!("{other:?} is not one of: csv, jsonl"),
            )),
        }
    }

    /// Guesses the format from a file name: `.csv` is CSV, `.jsonl`, `.ndjson` and `.json` are
    /// JSON Lines; a gzip-compressed file's name is read without its `.gz` (`x.csv.gz` is CSV).
    pub fn from_path(path: &Path) -> Option<Format> {
        let mut path = path;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
        {
            path = Path::new(path.file_stem()?);
        }
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

const FIELDS: [&str; 7] = [
    "event_id",
    "customer_id",
    "timestamp",
    "kind",
    "value",
    "category",
    "item",
];

/// A stream of parsed events. Items are `Err(Error::InvalidEvent)` for rejected rows (keep going)
/// and `Err(Error::Io)` when the input cannot be read (stop).
pub struct EventReader<R: Read> {
    inner: Inner<R>,
    /// Line of the row last returned.
    line: u64,
    /// Names of the columns or fields ignored so far, each logged once.
    ignored: Vec<String>,
}

enum Inner<R: Read> {
    /// No input at all (no CSV header): no rows.
    Empty,
    Csv {
        reader: csv::Reader<R>,
        /// Column index of each of [`FIELDS`], if present.
        columns: [Option<usize>; FIELDS.len()],
        width: usize,
        record: csv::ByteRecord,
    },
    Jsonl {
        reader: BufReader<R>,
        line: u64,
        buf: Vec<u8>,
    },
}

impl<R: Read> EventReader<R> {
    /// Starts reading `input` in `format`. For CSV the header is read and checked now.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (`header`) for a missing required column, a duplicated column,
    /// or an unreadable header.
    ///
    /// # Examples
    /// ```
    /// use persona::testing::event::parse::{EventReader, Format};
    /// let csv = "event_id,customer_id,timestamp,kind,value,category\n\
    ///            ,c1,1767225600000,purchase,12.5,books\n\
    ///            ,c1,2026-01-02T00:00:00Z,refund,-1,\n";
    /// let rows: Vec<_> = EventReader::new(csv.as_bytes(), Format::Csv)?.collect();
    /// assert_eq!(rows[0].as_ref().unwrap().value, Some(12.5));
    /// assert_eq!(
    ///     rows[1].as_ref().unwrap_err().to_string(),
    ///     "invalid event: line 3: field value: -1 for kind refund must be >= 0"
    /// );
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn new(input: R, format: Format) -> Result<EventReader<R>> {
        let mut ignored = Vec::new();
        let inner = match format {
            Format::Jsonl => Inner::Jsonl {
                reader: BufReader::new(input),
                line: 0,
                buf: Vec::new(),
            },
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(input);
                let header = reader.byte_headers().map_err(csv_header_error)?.clone();
                if header.is_empty() {
                    return Ok(EventReader {
                        inner: Inner::Empty,
                        line: 0,
                        ignored,
                    });
                }
                let mut columns = [None; FIELDS.len()];
                for (i, name) in header.iter().enumerate() {
                    let name = std::str::from_utf8(name)
                        .map_err(|_| header_error("column names must be UTF-8"))?
                        .trim();
                    let name = name.strip_prefix('\u{feff}').unwrap_or(name);
                    let Some(slot) = FIELDS.iter().position(|f| *f == name) else {
                        ignore(&mut ignored, name);
                        continue;
                    };
                    if columns[slot].replace(i).is_some() {
                        return Err(header_error(format!("column {name:?} appears twice")));
                    }
                }
                for required in [1, 2, 3] {
                    if columns[required].is_none() {
                        return Err(header_error(format!(
                            "missing required column {:?}; the header must name customer_id, \
                             timestamp and kind (and optionally event_id, value, category, item)",
                            FIELDS[required]
                        )));
                    }
                }
                Inner::Csv {
                    reader,
                    columns,
                    width: header.len(),
                    record: csv::ByteRecord::new(),
                }
            }
        };
        Ok(EventReader {
            inner,
            line: 0,
            ignored,
        })
    }

    /// The line (1-based, the CSV header being line 1) of the row [`Iterator::next`] returned
    /// last, valid or not.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Names of the CSV columns and JSON fields that were ignored so far (not event fields).
    pub fn ignored_fields(&self) -> &[String] {
        &self.ignored
    }
}

/// Notes an ignored column or field (once per name).
fn ignore(ignored: &mut Vec<String>, name: &str) {
    if !ignored.iter().any(|n| n == name) {
        ignored.push(name.to_string());
    }
}

fn header_error(reason: impl Into<String>) -> Error {
    Error::invalid_argument("header", reason)
}

fn csv_header_error(e: csv::Error) -> Error {
    let reason = format!("cannot read the CSV header: {e}");
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::Io(io),
        _ => header_error(reason),
    }
}

impl<R: Read> Iterator for EventReader<R> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        let last_line = &mut self.line;
        match &mut self.inner {
            Inner::Empty => None,
            Inner::Csv {
                reader,
                columns,
                width,
                record,
            } => loop {
                match reader.read_byte_record(record) {
                    Ok(false) => return None,
                    Ok(true) => {
                        let line = record.position().map(|p| p.line()).unwrap_or(0);
                        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                            continue; // a blank line
                        }
                        *last_line = line;
                        return Some(
                            csv_row(record, columns, *width)
                                .map(Event::with_row_id)
                                .map_err(|e| Error::InvalidEvent(e.at_line(line))),
                        );
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line()).unwrap_or(0);
                        *last_line = line;
                        let reason = format!("is not valid CSV: {e}");
                        return Some(Err(match e.into_kind() {
                            csv::ErrorKind::Io(io) => Error::Io(io),
                            _ => Error::InvalidEvent(
                                InvalidEvent::new("line", "", reason).at_line(line),
                            ),
                        }));
                    }
                }
            },
            Inner::Jsonl { reader, line, buf } => loop {
                buf.clear();
                let limit = (MAX_LINE_BYTES + 2) as u64;
                match reader.by_ref().take(limit).read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Ok(_) => {
                        *line += 1;
                        *last_line = *line;
                        if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
                            // Skip the rest of the over-long line before reporting it.
                            if let Err(e) = skip_line(reader) {
                                return Some(Err(Error::Io(e)));
                            }
                            return Some(Err(Error::InvalidEvent(
                                InvalidEvent::new(
                                    "line",
                                    "",
                                    format!("is longer than {MAX_LINE_BYTES} bytes"),
                                )
                                .at_line(*line),
                            )));
                        }
                        if buf.iter().all(|b| b.is_ascii_whitespace()) {
                            continue;
                        }
                        return Some(
                            json_row(buf, &mut self.ignored)
                                .map(Event::with_row_id)
                                .map_err(|e| Error::InvalidEvent(e.at_line(*line))),
                        );
                    }
                    Err(e) => return Some(Err(Error::Io(e))),
                }
            },
        }
    }
}

fn skip_line<R: Read>(reader: &mut BufReader<R>) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        if let Some(pos) = chunk.iter().position(|b| *b == b'\n') {
            reader.consume(pos + 1);
            return Ok(());
        }
        let n = chunk.len();
        reader.consume(n);
    }
}

fn utf8_field<'a>(field: &'static str, raw: &'a [u8]) -> Result<&'a str, InvalidEvent> {
    std::str::from_utf8(raw).map_err(|e| {
        InvalidEvent::new(
            field,
            String::from_utf8_lossy(raw).into_owned(),
            format!(
                "is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

fn csv_row(
    record: &csv::ByteRecord,
    columns: &[Option<usize>; FIELDS.len()],
    width: usize,
) -> Result<Event, InvalidEvent> {
    if record.len() != width {
        return Err(InvalidEvent::new(
            "line",
            "",
            format!(
                "has {} fields; the header has {width} columns",
                record.len()
            ),
        ));
    }
    let mut cells: [Option<&str>; FIELDS.len()] = [None; FIELDS.len()];
    for (slot, col) in columns.iter().enumerate() {
        if let Some(i) = col {
            let raw = record.get(*i).unwrap_or_default();
            let s = utf8_field(FIELDS[slot], raw)?;
            cells[slot] = (!s.is_empty()).then_some(s);
        }
    }
    let customer_id = cells[1]
        .ok_or_else(|| InvalidEvent::new("customer_id", "", "is required"))?
        .to_string();
    let timestamp_ms = parse_timestamp(
        cells[2].ok_or_else(|| InvalidEvent::new("timestamp", "", "is required"))?,
    )?;
    let kind =
        EventKind::parse(cells[3].ok_or_else(|| InvalidEvent::new("kind", "", "is required"))?)?;
    let value = cells[4].map(parse_value).transpose()?;
    let event = Event {
        event_id: cells[0].map(str::to_string),
        customer_id,
        timestamp_ms,
        kind,
        value,
        category: cells[5].map(str::to_string),
        item: cells[6].map(str::to_string),
    };
    event.validate()?;
    Ok(event)
}

fn parse_value(s: &str) -> Result<f64, InvalidEvent> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| InvalidEvent::new("value", s, "is not a number"))
}

fn json_row(line: &[u8], ignored: &mut Vec<String>) -> Result<Event, InvalidEvent> {
    let text = utf8_field("line", line)?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| InvalidEvent::new("line", "", format!("is not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(InvalidEvent::new(
            "line",
            "",
            "must be a JSON object with fields customer_id, timestamp, kind",
        ));
    };
    for key in map.keys() {
        if !FIELDS.contains(&key.as_str()) {
            ignore(ignored, key);
        }
    }
    let string = |field: &'static str| -> Result<Option<String>, InvalidEvent> {
        match map.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(InvalidEvent::new(
                field,
                other.to_string(),
                "must be a string",
            )),
        }
    };
    let customer_id = string("customer_id")?
        .ok_or_else(|| InvalidEvent::new("customer_id", "", "is required"))?;
    let timestamp_ms = match map.get("timestamp") {
        None | Some(serde_json::Value::Null) => {
            return Err(InvalidEvent::new("timestamp", "", "is required"))
        }
        Some(serde_json::Value::Number(n)) => n.as_i64().ok_or_else(|| {
            InvalidEvent::new(
                "timestamp",
                n.to_string(),
                "must be an integer of unix milliseconds",
            )
        })?,
        Some(serde_json::Value::String(s)) => parse_timestamp(s)?,
        Some(other) => {
            return Err(InvalidEvent::new(
                "timestamp",
                other.to_string(),
                "must be unix milliseconds or an RFC 3339 string",
            ))
        }
    };
    let kind = EventKind::parse(
        &string("kind")?.ok_or_else(|| InvalidEvent::new("kind", "", "is required"))?,
    )?;
    let value = match map.get("value") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(parse_value(s)?),
        Some(serde_json::Value::String(_)) => None,
        Some(other) => {
            return Err(InvalidEvent::new(
                "value",
                other.to_string(),
                "must be a number",
            ))
        }
    };
    let event = Event {
        event_id: string("event_id")?.filter(|s| !s.is_empty()),
        customer_id,
        timestamp_ms,
        kind,
        value,
        category: string("category")?.filter(|s| !s.is_empty()),
        item: string("item")?.filter(|s| !s.is_empty()),
    };
    event.validate()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gzip-compressed input is recognised by its bytes and read like the plain file.
    #[test]
    fn gzip_input_is_decompressed_whatever_its_name() -> std::io::Result<()> {
        use std::io::Write;
        let text = "event_id,customer_id,timestamp,kind,value,category\ne1,c1,0,click,,\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes())?;
        let gz = gz.finish()?;
        for input in [gz.as_slice(), text.as_bytes()] {
            let mut out = String::new();
            decompressed(input)?.read_to_string(&mut out)?;
            assert_eq!(out, text);
        }
        Ok(())
    }

    fn csv(text: &str) -> Vec<std::result::Result<Event, String>> {
        EventReader::new(text.as_bytes(), Format::Csv)
            .expect("header is valid")
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    fn jsonl(text: &[u8]) -> Vec<std::result::Result<Event, String>> {
        EventReader::new(text, Format::Jsonl)
            .expect("jsonl has no header")
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    const HEADER: &str = "event_id,customer_id,timestamp,kind,value,category\n";

    #[test]
    fn csv_rows_parse_and_rejects_carry_line_numbers() {
        let rows = csv(&format!(
            "{HEADER}e1,c1,1767225600000,purchase,10,books\n\
             ,c2,2026-01-01T00:00:00Z,view,,\n\
             e3,c3,1767225600000,teleport,,\n\
             e4,c4,1767225600000,view,1\n\
             e5,c5,soon,view,,\n"
        ));
        assert_eq!(rows.len(), 5);
        let e1 = rows[0].as_ref().expect("row 1 is valid");
        assert_eq!(e1.event_id.as_deref(), Some("e1"));
        assert_eq!(e1.category.as_deref(), Some("books"));
        let e2 = rows[1].as_ref().expect("row 2 is valid");
        assert_eq!(e2.timestamp_ms, 1_767_225_600_000);
        assert_eq!(e2.value, None);
        // A row without an id gets the stable hash of the row (a re-import is idempotent).
        let mut bare = e2.clone();
        bare.event_id = None;
        assert_eq!(e2.event_id, Some(bare.row_id()));
        assert!(rows[2]
            .as_ref()
            .unwrap_err()
            .starts_with("invalid event: line 4: field kind: teleport must be one of"));
        assert_eq!(
            rows[3].as_ref().unwrap_err(),
            "invalid event: line 5: field line has 5 fields; the header has 6 columns"
        );
        assert!(rows[4]
            .as_ref()
            .unwrap_err()
            .starts_with("invalid event: line 6: field timestamp: soon is neither"));
    }

    #[test]
    fn csv_header_must_name_required_columns() {
        let err = |h: &str| {
            EventReader::new(h.as_bytes(), Format::Csv)
                .err()
                .expect("header is rejected")
                .to_string()
        };
        assert!(err("customer_id,kind\n").contains("missing required column \"timestamp\""));
        assert!(err("customer_id,timestamp,kind,kind\n").contains("\"kind\" appears twice"));
        // Column order is free and optional columns may be left out.
        let ok = csv("kind,timestamp,customer_id\nclick,1767225600000,c9\n");
        assert_eq!(ok[0].as_ref().expect("valid").customer_id, "c9");
    }

    #[test]
    fn the_item_is_read_from_its_column_or_field_and_checked() {
        let rows = csv("customer_id,timestamp,kind,item\nc1,0,view,sku-9\nc1,0,view,\n");
        assert_eq!(
            rows[0].as_ref().expect("valid").item.as_deref(),
            Some("sku-9")
        );
        assert_eq!(
            rows[1].as_ref().expect("valid").item,
            None,
            "empty is absent"
        );
        let long = "x".repeat(129);
        let rows = csv(&format!(
            "customer_id,timestamp,kind,item\nc1,0,view,{long}\n"
        ));
        let err = rows[0].as_ref().expect_err("too long");
        assert!(err.contains("line 2: field item"), "{err}");
        let rows = jsonl(
            b"{\"customer_id\":\"c1\",\"timestamp\":0,\"kind\":\"view\",\"item\":\"sku-1\"}\n\
              {\"customer_id\":\"c1\",\"timestamp\":0,\"kind\":\"view\",\"item\":7}\n",
        );
        assert_eq!(
            rows[0].as_ref().expect("valid").item.as_deref(),
            Some("sku-1")
        );
        assert!(rows[1]
            .as_ref()
            .expect_err("a number")
            .contains("field item"));
    }

    #[test]
    fn unknown_columns_and_fields_are_ignored_and_named() {
        let text = "customer_id,size,timestamp,kind,colour\nc1,xl,1767225600000,click,red\n";
        let mut reader = EventReader::new(text.as_bytes(), Format::Csv).expect("header");
        let row = reader.next().expect("one row").expect("valid");
        assert_eq!((row.customer_id.as_str(), reader.line()), ("c1", 2));
        assert_eq!(reader.ignored_fields(), ["size", "colour"]);
        let text = "{\"customer_id\":\"c1\",\"timestamp\":1767225600000,\"kind\":\"like\",\"colour\":1}\n\
                    {\"customer_id\":\"c2\",\"timestamp\":1767225600000,\"kind\":\"like\",\"colour\":2}\n";
        let mut reader = EventReader::new(text.as_bytes(), Format::Jsonl).expect("no header");
        assert!(reader.next().expect("row 1").is_ok());
        assert!(reader.next().expect("row 2").is_ok());
        assert_eq!(
            (reader.line(), reader.ignored_fields()),
            (2, &["colour".to_string()][..])
        );
    }

    #[test]
    fn empty_input_has_no_rows_in_both_formats() {
        for format in [Format::Csv, Format::Jsonl] {
            let rows = EventReader::new(&b""[..], format).expect("empty input is no rows");
            assert_eq!(rows.count(), 0, "{format:?}");
        }
    }

    #[test]
    fn csv_invalid_utf8_and_nan_are_rejected() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b",c\xff1,1767225600000,view,,\n,c1,1767225600000,view,NaN,\n");
        let rows: Vec<_> = EventReader::new(&bytes[..], Format::Csv)
            .expect("header")
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        assert!(rows[0]
            .as_ref()
            .unwrap_err()
            .contains("line 2: field customer_id: c\u{fffd}1 is not valid UTF-8"));
        assert!(rows[1].as_ref().unwrap_err().contains("NaN and infinity"));
    }

    #[test]
    fn jsonl_rows_parse_and_rejects_are_specific() {
        let rows = jsonl(
            br#"{"customer_id":"c1","timestamp":1767225600000,"kind":"rating","value":4}

{"customer_id":"c1","timestamp":"2026-01-01T00:00:00+01:00","kind":"like","category":null}
{"customer_id":"c1","timestamp":1767225600000,"kind":"like","colour":"red"}
{"customer_id":7,"timestamp":1767225600000,"kind":"like"}
not json
{"customer_id":"c1","timestamp":1.5,"kind":"like"}
"#,
        );
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].as_ref().expect("valid").value, Some(4.0));
        assert_eq!(
            rows[1].as_ref().expect("valid").timestamp_ms,
            1_767_225_600_000 - 3_600_000
        );
        assert_eq!(
            rows[2]
                .as_ref()
                .expect("an unknown field is ignored")
                .customer_id,
            "c1"
        );
        assert!(rows[3]
            .as_ref()
            .unwrap_err()
            .contains("line 5: field customer_id: 7 must be a string"));
        assert!(rows[4]
            .as_ref()
            .unwrap_err()
            .contains("line 6: field line is not valid JSON"));
        assert!(rows[5]
            .as_ref()
            .unwrap_err()
            .contains("field timestamp: 1.5 must be an integer"));
    }

    #[test]
    fn jsonl_over_long_lines_are_rejected_and_skipped() {
        let mut input = br#"{"customer_id":""#.to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        input.extend_from_slice(
            b"\"}\n{\"customer_id\":\"c\",\"timestamp\":1767225600000,\"kind\":\"click\"}\n",
        );
        let rows = jsonl(&input);
        assert_eq!(rows.len(), 2);
        assert!(rows[0]
            .as_ref()
            .unwrap_err()
            .contains("line 1: field line is longer"));
        assert_eq!(rows[1].as_ref().expect("valid").customer_id, "c");
    }

    #[test]
    fn format_from_path() {
        assert_eq!(Format::from_path(Path::new("a/b.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("x.jsonl")), Some(Format::Jsonl));
        assert_eq!(
            Format::from_path(Path::new("x.events.csv.gz")),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_path(Path::new("x.jsonl.GZ")),
            Some(Format::Jsonl)
        );
        assert_eq!(Format::from_path(Path::new("x.gz")), None);
        assert_eq!(Format::from_path(Path::new("x.txt")), None);
        assert!(Format::parse("xml").is_err());
    }
}
