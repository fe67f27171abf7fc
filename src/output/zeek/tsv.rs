//! One record as a row of Zeek's TSV: fields joined by tabs, `T`/`F` for booleans, six
//! decimals for times and intervals, sets joined by commas, `-` for unset and `(empty)` for an
//! empty string or set. Bytes a reader would split on (tab, comma in a set, a backslash, or
//! anything unprintable) are written as Zeek escapes them, `\xNN`.

use super::super::json::JsonError;
use serde::Serialize;
use serde::ser::{self, Impossible};

/// Append `record` (a struct) to `out` as one TSV row, without the newline.
pub(super) fn write<R: Serialize + ?Sized>(out: &mut Vec<u8>, record: &R) -> Result<(), JsonError> {
    record.serialize(Row { out })
}

struct Row<'a> {
    out: &'a mut Vec<u8>,
}

struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Fields<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.out.push(b'\t');
        }
        self.first = false;
    }
}

impl ser::SerializeStruct for Fields<'_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        self.separate();
        v.serialize(Value {
            out: self.out,
            in_set: false,
        })
    }
    fn skip_field(&mut self, _: &'static str) -> Result<(), JsonError> {
        self.separate();
        self.out.push(b'-');
        Ok(())
    }
    fn end(self) -> Result<(), JsonError> {
        Ok(())
    }
}

/// Bytes of a string value, escaped.
fn escape(out: &mut Vec<u8>, s: &str, in_set: bool) {
    if s.is_empty() {
        out.extend_from_slice(b"(empty)");
        return;
    }
    if s == "-" {
        out.extend_from_slice(b"\\x2d");
        return;
    }
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b',' if in_set => out.extend_from_slice(b"\\x2c"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
}

struct Value<'a> {
    out: &'a mut Vec<u8>,
    in_set: bool,
}

struct Set<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl ser::SerializeSeq for Set<'_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), JsonError> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        v.serialize(Value {
            out: self.out,
            in_set: true,
        })
    }
    fn end(self) -> Result<(), JsonError> {
        if self.empty {
            self.out.extend_from_slice(b"(empty)");
        }
        Ok(())
    }
}

fn not_a_value() -> JsonError {
    JsonError::Custom("a Zeek log field must be a number, a string, a bool or a set".into())
}

macro_rules! integers {
    ($($method:ident($t:ty)),*) => {
        $(fn $method(self, v: $t) -> Result<(), JsonError> {
            self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            Ok(())
        })*
    };
}

impl<'a> ser::Serializer for Value<'a> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Set<'a>;
    type SerializeTuple = Impossible<(), JsonError>;
    type SerializeTupleStruct = Impossible<(), JsonError>;
    type SerializeTupleVariant = Impossible<(), JsonError>;
    type SerializeMap = Impossible<(), JsonError>;
    type SerializeStruct = Impossible<(), JsonError>;
    type SerializeStructVariant = Impossible<(), JsonError>;

    integers!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64)
    );

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.out.push(if v { b'T' } else { b'F' });
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        use std::io::Write;
        write!(self.out, "{v:.6}").map_err(|e| JsonError::Custom(e.to_string()))
    }
    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        escape(self.out, v, self.in_set);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), JsonError> {
        self.out.push(b'-');
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), JsonError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), JsonError> {
        self.serialize_none()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        v.serialize(self)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.serialize_str(variant)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Set<'a>, JsonError> {
        if self.in_set {
            return Err(not_a_value());
        }
        Ok(Set {
            out: self.out,
            empty: true,
        })
    }
    /// Addresses (`IpAddr` writes itself with `collect_str`).
    fn collect_str<T: std::fmt::Display + ?Sized>(self, v: &T) -> Result<(), JsonError> {
        self.serialize_str(&v.to_string())
    }

    refuse! {
        JsonError, not_a_value();
        serialize_bytes(&[u8]) -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_tuple(usize) -> Impossible<(), JsonError>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), JsonError>;
        serialize_map(Option<usize>) -> Impossible<(), JsonError>;
        serialize_struct(&'static str, usize) -> Impossible<(), JsonError>;
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), JsonError> {
        Err(not_a_value())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Impossible<(), JsonError>, JsonError> {
        Err(not_a_value())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Impossible<(), JsonError>, JsonError> {
        Err(not_a_value())
    }
}

impl<'a> ser::Serializer for Row<'a> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Impossible<(), JsonError>;
    type SerializeTuple = Impossible<(), JsonError>;
    type SerializeTupleStruct = Impossible<(), JsonError>;
    type SerializeTupleVariant = Impossible<(), JsonError>;
    type SerializeMap = Impossible<(), JsonError>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Impossible<(), JsonError>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields<'a>, JsonError> {
        Ok(Fields {
            out: self.out,
            first: true,
        })
    }

    refuse! {
        JsonError, not_a_value();
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
        serialize_seq(Option<usize>) -> Impossible<(), JsonError>;
        serialize_tuple(usize) -> Impossible<(), JsonError>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), JsonError>;
        serialize_map(Option<usize>) -> Impossible<(), JsonError>;
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), JsonError> {
        Err(not_a_value())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        v.serialize(self)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), JsonError> {
        Err(not_a_value())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), JsonError> {
        Err(not_a_value())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Impossible<(), JsonError>, JsonError> {
        Err(not_a_value())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Impossible<(), JsonError>, JsonError> {
        Err(not_a_value())
    }
}
