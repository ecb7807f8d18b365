//! Record formats (Flink's `DeserializationSchema` / `SerializationSchema` and its `json`
//! and `csv` formats): how the bytes of one record — a line of a file, a message — become
//! a value, and back.
//!
//! A schema decodes one record and says only *what* is wrong with it; the connector that
//! read the bytes adds *where* they came from (file and line, topic/partition/offset).
//!
//! ```
//! use floe::connectors::format::{Csv, DeserializationSchema, Json, SerializationSchema};
//! #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
//! struct Bid {
//!     auction: u64,
//!     price: u64,
//! }
//! let bid: Bid = Json::new().deserialize(br#"{"auction":1,"price":20}"#).unwrap();
//! assert_eq!(bid, Bid { auction: 1, price: 20 });
//! let mut line = Vec::new();
//! Csv::new().serialize(&bid, &mut line).unwrap();
//! assert_eq!(line, b"1,20");
//! let err = Json::<Bid>::new().deserialize(br#"{"auction":1}"#).unwrap_err();
//! assert_eq!(err.to_string(), "missing field `price` at line 1 column 13");
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;

/// A record that could not be decoded or encoded: what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// Decodes one record (Flink's `DeserializationSchema`). Every reader of a source has its
/// own clone, so a schema may keep buffers between records.
pub trait DeserializationSchema<T>: Clone + Send + Sync + 'static {
    /// The value of one record's bytes.
    fn deserialize(&mut self, bytes: &[u8]) -> Result<T, FormatError>;

    /// For line-based inputs: whether `bytes` (lines read so far, joined by `\n`) hold a
    /// whole record. CSV fields may contain line breaks inside quotes; other formats are
    /// one record per line.
    fn is_complete(&self, _bytes: &[u8]) -> bool {
        true
    }

    /// Whether every input (every file) starts with a header record, which the source
    /// hands to [`Self::set_header`] before the input's records, also when it resumes
    /// inside the input after a restore.
    fn has_header(&self) -> bool {
        false
    }

    /// The header record of the input the next records come from.
    fn set_header(&mut self, _bytes: &[u8]) -> Result<(), FormatError> {
        Ok(())
    }
}

/// Encodes one record (Flink's `SerializationSchema`).
pub trait SerializationSchema<T>: Clone + Send + Sync + 'static {
    /// Appends the record's bytes, without a line terminator, to `out`.
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<(), FormatError>;
}

/// UTF-8 text as it is (Flink's `SimpleStringSchema`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimpleStringSchema;

impl DeserializationSchema<String> for SimpleStringSchema {
    fn deserialize(&mut self, bytes: &[u8]) -> Result<String, FormatError> {
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| FormatError(format!("invalid UTF-8: {e}")))
    }
}

impl<S: AsRef<str> + 'static> SerializationSchema<S> for SimpleStringSchema {
    fn serialize(&self, value: &S, out: &mut Vec<u8>) -> Result<(), FormatError> {
        out.extend_from_slice(value.as_ref().as_bytes());
        Ok(())
    }
}

/// JSON into and out of a serde type (Flink's `json` format; one JSON document per record,
/// JSON Lines in files).
pub struct Json<T> {
    _t: PhantomData<fn() -> T>,
}

impl<T> Json<T> {
    /// The JSON format of `T`.
    pub fn new() -> Self {
        Json { _t: PhantomData }
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json::new()
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Json")
    }
}

impl<T: DeserializeOwned + 'static> DeserializationSchema<T> for Json<T> {
    fn deserialize(&mut self, bytes: &[u8]) -> Result<T, FormatError> {
        serde_json::from_slice(bytes).map_err(|e| FormatError(e.to_string()))
    }
}

impl<T: Serialize + 'static> SerializationSchema<T> for Json<T> {
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<(), FormatError> {
        serde_json::to_writer(out, value).map_err(|e| FormatError(e.to_string()))
    }
}

/// CSV (RFC 4180) into and out of a serde type (Flink's `csv` format): fields in the order
/// of the type's fields, or named by each file's header line with [`Csv::with_header`] (for
/// reading; what is written has no header). Fields may be quoted with `"`, with `""` for a
/// quote inside, and may then contain the delimiter and line breaks.
pub struct Csv<T> {
    delimiter: u8,
    /// With a header: the field names of the current input, which map columns to fields.
    with_header: bool,
    header: Option<csv::ByteRecord>,
    /// Reused between records: the parser and the fields of the record being decoded.
    parser: csv_core::Reader,
    fields: csv::ByteRecord,
    field: Vec<u8>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Csv<T> {
    /// Comma-separated fields.
    pub fn new() -> Self {
        Csv::with_delimiter(b',')
    }

    /// Fields separated by `delimiter` (Flink's `csv.field-delimiter`), e.g. `b';'`.
    pub fn with_delimiter(delimiter: u8) -> Self {
        Csv {
            delimiter,
            with_header: false,
            header: None,
            parser: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            fields: csv::ByteRecord::new(),
            field: Vec::new(),
            _t: PhantomData,
        }
    }

    /// Every file starts with a header line naming the fields: columns are matched to the
    /// type's fields by name, in any order, and the header is not a record.
    pub fn with_header(mut self) -> Self {
        self.with_header = true;
        self
    }

    /// Splits one record into `self.fields`.
    fn split(&mut self, mut input: &[u8]) -> Result<(), FormatError> {
        use csv_core::ReadFieldResult as R;
        self.parser.reset();
        self.fields.clear();
        self.field.clear();
        let mut buf = [0u8; 256];
        loop {
            let (result, read, written) = self.parser.read_field(input, &mut buf);
            input = &input[read..];
            self.field.extend_from_slice(&buf[..written]);
            match result {
                R::InputEmpty => {
                    if input.is_empty() {
                        // Tells the parser the record ended (no terminator after it).
                        let (r, _, w) = self.parser.read_field(&[], &mut buf);
                        self.field.extend_from_slice(&buf[..w]);
                        if matches!(r, R::Field { .. }) {
                            self.fields.push_field(&self.field);
                        }
                        return Ok(());
                    }
                }
                R::OutputFull => {}
                R::Field { record_end } => {
                    self.fields.push_field(&self.field);
                    self.field.clear();
                    if record_end {
                        if input.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                            return Ok(());
                        }
                        return Err(FormatError(
                            "more than one CSV record (a line break outside quotes)".into(),
                        ));
                    }
                }
                R::End => return Ok(()),
            }
        }
    }
}

impl<T> Default for Csv<T> {
    fn default() -> Self {
        Csv::new()
    }
}

impl<T> Clone for Csv<T> {
    fn clone(&self) -> Self {
        Csv {
            with_header: self.with_header,
            ..Csv::with_delimiter(self.delimiter)
        }
    }
}

impl<T> std::fmt::Debug for Csv<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Csv(delimiter {:?})", self.delimiter as char)
    }
}

impl<T: DeserializeOwned + 'static> DeserializationSchema<T> for Csv<T> {
    fn deserialize(&mut self, bytes: &[u8]) -> Result<T, FormatError> {
        self.split(bytes)?;
        let header = match (&self.header, self.with_header) {
            (Some(h), true) => Some(h),
            (None, true) => return Err(FormatError("no header line came before it".into())),
            (_, false) => None,
        };
        self.fields
            .deserialize(header)
            .map_err(|e| FormatError(csv_error(&e)))
    }

    fn is_complete(&self, bytes: &[u8]) -> bool {
        // Quotes inside a quoted field are doubled, so an odd count means a field is open.
        bytes.iter().filter(|&&b| b == b'"').count() % 2 == 0
    }

    fn has_header(&self) -> bool {
        self.with_header
    }

    fn set_header(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        self.split(bytes)?;
        self.header = Some(self.fields.clone());
        Ok(())
    }
}

impl<T: Serialize + 'static> SerializationSchema<T> for Csv<T> {
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<(), FormatError> {
        // A writer per record (its small buffer is the one allocation): the csv crate
        // serializes serde types only through a writer that owns its output.
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .delimiter(self.delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(256)
            .from_writer(&mut *out);
        w.serialize(value)
            .and_then(|_| w.flush().map_err(csv::Error::from))
            .map_err(|e| FormatError(csv_error(&e)))?;
        drop(w);
        // The writer ends the record with its terminator; the caller adds its own.
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        Ok(())
    }
}

/// A csv error without the crate's "CSV deserialize error: record 0 (line: 1, byte: 0)"
/// position, which is that of the one-record input rather than of the source.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(f) => format!("field {}: {}", f + 1, err.kind()),
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Rec {
        name: String,
        n: i64,
        price: Option<f64>,
    }

    #[test]
    fn csv_decodes_quoted_fields_with_delimiters_quotes_and_line_breaks() {
        let mut c = Csv::<Rec>::new();
        assert_eq!(
            c.deserialize(b"plain,3,1.5").unwrap(),
            Rec {
                name: "plain".into(),
                n: 3,
                price: Some(1.5)
            }
        );
        let quoted = b"\"a, \"\"b\"\"\nc\",-7,";
        assert!(c.is_complete(quoted));
        assert!(!c.is_complete(b"\"a, \"\"b\"\""));
        assert_eq!(
            c.deserialize(quoted).unwrap(),
            Rec {
                name: "a, \"b\"\nc".into(),
                n: -7,
                price: None
            }
        );
        // A trailing line break is not a record of its own.
        assert_eq!(c.deserialize(b"x,1,2\r\n").unwrap().n, 1);
        let mut semi = Csv::<Rec>::with_delimiter(b';');
        assert_eq!(semi.deserialize(b"a,b;2;").unwrap().name, "a,b");
    }

    #[test]
    fn csv_with_a_header_matches_columns_by_name() {
        let mut c = Csv::<Rec>::new().with_header();
        assert!(c.has_header());
        assert_eq!(
            c.deserialize(b"5,x,1").unwrap_err().0,
            "no header line came before it"
        );
        c.set_header(b"price,n,name").unwrap();
        assert_eq!(
            c.deserialize(b"2.5,7,\"q,r\"").unwrap(),
            Rec {
                name: "q,r".into(),
                n: 7,
                price: Some(2.5)
            }
        );
        // A clone is another reader's: it has not read a header.
        assert!(c.clone().deserialize(b"1,2,x").is_err());
    }

    #[test]
    fn csv_errors_name_the_field_and_what_is_wrong() {
        let mut c = Csv::<Rec>::new();
        assert_eq!(
            c.deserialize(b"a,notanumber,1").unwrap_err().0,
            "field 2: invalid digit found in string"
        );
        assert!(c.deserialize(b"a,1").unwrap_err().0.contains("expected"));
        assert_eq!(
            c.deserialize(b"a,1,2\nb,2,3").unwrap_err().0,
            "more than one CSV record (a line break outside quotes)"
        );
    }

    #[test]
    fn csv_and_json_serialize_what_they_decode() {
        let r = Rec {
            name: "x,\"y\"".into(),
            n: 5,
            price: None,
        };
        let mut out = Vec::new();
        Csv::new().serialize(&r, &mut out).unwrap();
        assert_eq!(out, b"\"x,\"\"y\"\"\",5,");
        assert_eq!(Csv::<Rec>::new().deserialize(&out).unwrap(), r);
        out.clear();
        Json::new().serialize(&r, &mut out).unwrap();
        assert_eq!(out, br#"{"name":"x,\"y\"","n":5,"price":null}"#);
        assert_eq!(Json::<Rec>::new().deserialize(&out).unwrap(), r);
        let unrepresentable = std::collections::BTreeMap::from([((1u8, 2u8), 3u8)]);
        assert_eq!(
            Json::new()
                .serialize(&unrepresentable, &mut Vec::new())
                .unwrap_err()
                .0,
            "key must be a string"
        );
        assert_eq!(
            SimpleStringSchema.deserialize(b"\xff").unwrap_err().0,
            "invalid UTF-8: invalid utf-8 sequence of 1 bytes from index 0"
        );
    }
}
