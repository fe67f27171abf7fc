//! CSV through the csv crate, with the header derived from the record type: the names of its
//! fields in order, taken from a default instance, so the header is there even when no record
//! follows and can never disagree with the rows.

use serde::Serialize;
use serde::ser::{self, Impossible};
use std::io::{self, Write};

/// A CSV file of `R` records, header first.
pub struct CsvRecords<W: Write> {
    writer: csv::Writer<W>,
}

impl<W: Write> CsvRecords<W> {
    /// Write the header of `R` (its field names) at once.
    pub fn new<R: Serialize + Default>(writer: W) -> io::Result<Self> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(writer);
        writer.write_record(field_names(&R::default())?)?;
        Ok(CsvRecords { writer })
    }

    /// One row: every field of `record`, in order (`None` is an empty cell; numbers as the
    /// JSON outputs write them).
    pub fn write<R: Serialize>(&mut self, record: &R) -> io::Result<()> {
        self.writer.serialize(record)?;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Flush and hand the writer back.
    pub fn finish(self) -> io::Result<W> {
        self.writer
            .into_inner()
            .map_err(|e| io::Error::new(e.error().kind(), e.error().to_string()))
    }
}

/// The field names of a struct, in the order serde writes them.
pub fn field_names<R: Serialize>(record: &R) -> io::Result<Vec<&'static str>> {
    let mut names = Vec::new();
    record
        .serialize(FieldNames(&mut names))
        .map_err(|NotAStruct| {
            io::Error::new(io::ErrorKind::InvalidInput, "a CSV record must be a struct")
        })?;
    Ok(names)
}

#[derive(Debug, thiserror::Error)]
#[error("a CSV record must be a struct")]
struct NotAStruct;

impl ser::Error for NotAStruct {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotAStruct
    }
}

/// A serializer that only collects a struct's field names.
struct FieldNames<'a>(&'a mut Vec<&'static str>);

impl ser::SerializeStruct for FieldNames<'_> {
    type Ok = ();
    type Error = NotAStruct;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        _: &T,
    ) -> Result<(), NotAStruct> {
        self.0.push(key);
        Ok(())
    }
    fn end(self) -> Result<(), NotAStruct> {
        Ok(())
    }
}

impl<'a> ser::Serializer for FieldNames<'a> {
    type Ok = ();
    type Error = NotAStruct;
    type SerializeSeq = Impossible<(), NotAStruct>;
    type SerializeTuple = Impossible<(), NotAStruct>;
    type SerializeTupleStruct = Impossible<(), NotAStruct>;
    type SerializeTupleVariant = Impossible<(), NotAStruct>;
    type SerializeMap = Impossible<(), NotAStruct>;
    type SerializeStruct = FieldNames<'a>;
    type SerializeStructVariant = Impossible<(), NotAStruct>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<FieldNames<'a>, NotAStruct> {
        Ok(self)
    }

    refuse! {
        NotAStruct, NotAStruct;
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotAStruct> {
        Err(NotAStruct)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotAStruct> {
        Err(NotAStruct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Serialize)]
    struct Row {
        name: String,
        count: u64,
        ratio: Option<f64>,
        note: Option<String>,
    }

    fn csv_of(rows: &[Row]) -> String {
        let mut out = CsvRecords::new::<Row>(Vec::new()).unwrap();
        for r in rows {
            out.write(r).unwrap();
        }
        String::from_utf8(out.finish().unwrap()).unwrap()
    }

    #[test]
    fn the_header_is_the_field_names_even_without_rows() {
        assert_eq!(csv_of(&[]), "name,count,ratio,note\n");
    }

    #[test]
    fn cells_are_quoted_when_they_must_be_and_none_is_empty() {
        let rows = [
            Row {
                name: "plain".into(),
                count: 3,
                ratio: Some(0.5),
                note: None,
            },
            Row {
                name: "a,comma \"quoted\"\nnewline".into(),
                count: 0,
                ratio: None,
                note: Some(String::new()),
            },
        ];
        assert_eq!(
            csv_of(&rows),
            "name,count,ratio,note\nplain,3,0.5,\n\"a,comma \"\"quoted\"\"\nnewline\",0,,\n"
        );
    }

    #[test]
    fn a_record_that_is_not_a_struct_is_an_error_not_a_panic() {
        assert!(field_names(&5u32).is_err());
        assert!(CsvRecords::new::<Vec<u8>>(Vec::new()).is_err());
    }
}
