//! The JSON encoder every subcommand's records go through: a serde `Serializer` writing into a
//! byte buffer, compact (one line) or pretty (two-space indent), byte for byte what serde_json
//! writes for the same value — except that bytes (`serialize_bytes`) become a base64 string,
//! as ripgrep's JSON does, instead of an array of numbers. Strings are escaped a word at a
//! time ([`super::escape`]), which is most of the cost of a line that carries an HTTP body.

use super::escape::{first_escape, write_base64, write_str};
use super::field_names::{FieldNames, Learning};
use serde::Serialize;
use serde::ser::{self, Impossible};
use std::fmt::Display;

/// Why a value could not be written as JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("{0}")]
    Custom(String),
    #[error("a JSON object key must be a string, a number, a bool or a char")]
    KeyNotText,
}

impl ser::Error for JsonError {
    fn custom<T: Display>(msg: T) -> Self {
        JsonError::Custom(msg.to_string())
    }
}

impl From<JsonError> for std::io::Error {
    fn from(e: JsonError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// Append `value` to `out` as compact JSON.
pub fn write_compact<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), JsonError> {
    value.serialize(&mut Encoder::new(out, None))
}

/// Append `value` to `out` as indented JSON, its nested lines indented `depth` levels deeper
/// than the first (what an element of a streamed array needs).
pub fn write_pretty<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    depth: usize,
) -> Result<(), JsonError> {
    value.serialize(&mut Encoder::new(out, Some(depth)))
}

/// Bytes as a JSON string: as they are when they are UTF-8, else base64 (the encoding names
/// which). Base64 needs this module's encoder, which writes `serialize_bytes` that way.
#[derive(Clone, Copy, Debug)]
pub enum TextOrBase64<'a> {
    Text(&'a str),
    Base64(&'a [u8]),
}

impl<'a> TextOrBase64<'a> {
    /// Text when `bytes` are UTF-8, base64 otherwise.
    pub fn of(bytes: &'a [u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => TextOrBase64::Text(text),
            Err(_) => TextOrBase64::Base64(bytes),
        }
    }

    /// `utf-8` or `base64`, as the records' `*_encoding` fields say.
    pub fn encoding(&self) -> &'static str {
        match self {
            TextOrBase64::Text(_) => "utf-8",
            TextOrBase64::Base64(_) => "base64",
        }
    }
}

impl Serialize for TextOrBase64<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TextOrBase64::Text(text) => serializer.serialize_str(text),
            TextOrBase64::Base64(bytes) => serializer.serialize_bytes(bytes),
        }
    }
}

/// A newline and the indentation of up to 31 levels, copied in one piece.
const NEWLINE_AND_INDENT: &[u8; 63] =
    b"\n                                                              ";

/// A serde serializer into a byte buffer; `indent` is the current depth when pretty.
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    indent: Option<usize>,
}

impl<'a> Encoder<'a> {
    fn new(out: &'a mut Vec<u8>, indent: Option<usize>) -> Self {
        Encoder { out, indent }
    }

    #[inline]
    fn newline(&mut self) {
        if let Some(depth) = self.indent {
            match NEWLINE_AND_INDENT.get(..1 + 2 * depth) {
                Some(indent) => self.out.extend_from_slice(indent),
                None => {
                    self.out.push(b'\n');
                    self.out.resize(self.out.len() + 2 * depth, b' ');
                }
            }
        }
    }

    /// Write an opening bracket and go one level deeper.
    fn open(&mut self, bracket: u8, empty: bool) -> Brackets {
        self.out.push(bracket);
        if let Some(depth) = &mut self.indent {
            *depth += 1;
        }
        Brackets {
            first: true,
            close: if bracket == b'[' { b']' } else { b'}' },
            empty,
        }
    }

    #[inline]
    fn colon(&mut self) {
        self.out.push(b':');
        if self.indent.is_some() {
            self.out.push(b' ');
        }
    }

    fn integer(&mut self, v: impl itoa::Integer) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    fn float(&mut self, v: impl ryu::Float, finite: bool) {
        if finite {
            self.out
                .extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
        } else {
            self.out.extend_from_slice(b"null");
        }
    }

    /// `{"variant":` as serde_json writes an enum variant carrying data; the object is closed
    /// by [`Brackets::finish`] on what this returns.
    fn open_variant(&mut self, variant: &str) -> Brackets {
        let mut object = self.open(b'{', false);
        object.element(self);
        write_str(self.out, variant);
        self.colon();
        object
    }
}

/// The state of an array or object being written: separators, indentation, the closing bracket.
struct Brackets {
    first: bool,
    close: u8,
    /// Known empty at the start (serde_json closes those at once, with nothing between).
    empty: bool,
}

impl Brackets {
    #[inline]
    fn element(&mut self, encoder: &mut Encoder<'_>) {
        if !self.first {
            encoder.out.push(b',');
        }
        self.first = false;
        encoder.newline();
    }

    fn finish(self, encoder: &mut Encoder<'_>) {
        if let Some(depth) = &mut encoder.indent {
            *depth -= 1;
        }
        if !self.first && !self.empty {
            encoder.newline();
        }
        encoder.out.push(self.close);
    }
}

/// An array or object being written.
pub struct Compound<'e, 'a> {
    encoder: &'e mut Encoder<'a>,
    brackets: Brackets,
    names: Names,
}

/// How a struct's field names are written.
enum Names {
    /// Each the long way: not a struct.
    Written,
    /// From what the struct's first record taught, field by field.
    Known {
        names: &'static FieldNames,
        position: usize,
    },
    /// The long way, kept for the struct's next records at this depth.
    Learning {
        name: &'static str,
        depth: Option<usize>,
        learning: Learning,
    },
}

impl Compound<'_, '_> {
    #[inline]
    fn element(&mut self) {
        self.brackets.element(self.encoder);
    }

    /// A struct field's name: plain ASCII in every record of ours, written in one piece.
    #[inline]
    fn key(&mut self, key: &str) {
        self.element();
        let out = &mut *self.encoder.out;
        if first_escape(key.as_bytes()).is_none() {
            out.reserve(key.len() + 4);
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.push(b'"');
        } else {
            write_str(out, key);
        }
        self.encoder.colon();
    }

    fn finish(self) {
        if let Names::Learning {
            name,
            depth,
            learning,
        } = self.names
        {
            learning.keep(name, depth);
        }
        self.brackets.finish(self.encoder);
    }

    /// A struct field's name, from the learned names when they hold.
    #[inline]
    fn field_name(&mut self, key: &'static str) {
        match &mut self.names {
            Names::Known { names, position } => {
                let prefix = names.prefix(*position, key);
                *position += 1;
                match prefix {
                    Some(prefix) => {
                        self.brackets.first = false;
                        self.encoder.out.extend_from_slice(prefix);
                    }
                    None => self.key(key),
                }
            }
            Names::Learning { .. } => {
                let start = self.encoder.out.len() + usize::from(!self.brackets.first);
                self.key(key);
                if let Names::Learning { learning, .. } = &mut self.names {
                    learning.field(key, &self.encoder.out[start..]);
                }
            }
            Names::Written => self.key(key),
        }
    }
}

/// The serializer's integer methods: each writes its number with itoa.
macro_rules! integers {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), JsonError> {
            self.integer(v);
            Ok(())
        })*
    };
}

impl<'e, 'a> ser::Serializer for &'e mut Encoder<'a> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Compound<'e, 'a>;
    type SerializeTuple = Compound<'e, 'a>;
    type SerializeTupleStruct = Compound<'e, 'a>;
    type SerializeTupleVariant = Variant<'e, 'a>;
    type SerializeMap = Compound<'e, 'a>;
    type SerializeStruct = Compound<'e, 'a>;
    type SerializeStructVariant = Variant<'e, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128);

    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        self.float(v, v.is_finite());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        self.float(v, v.is_finite());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        write_str(self.out, v);
        Ok(())
    }
    /// A `Display` value formatted straight into the line, escaped only if it must be.
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        use std::io::Write as _;
        let start = self.out.len();
        self.out.push(b'"');
        write!(self.out, "{value}").map_err(|e| JsonError::Custom(e.to_string()))?;
        if first_escape(&self.out[start + 1..]).is_some() {
            let text = self.out.split_off(start);
            self.out.truncate(start);
            let text =
                std::str::from_utf8(&text[1..]).map_err(|e| JsonError::Custom(e.to_string()))?;
            write_str(self.out, text);
        } else {
            self.out.push(b'"');
        }
        Ok(())
    }
    /// Bytes are written as a base64 string (serde_json writes an array of numbers).
    fn serialize_bytes(self, v: &[u8]) -> Result<(), JsonError> {
        write_base64(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), JsonError> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), JsonError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), JsonError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        let object = self.open_variant(variant);
        value.serialize(&mut *self)?;
        object.finish(self);
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'e, 'a>, JsonError> {
        let brackets = self.open(b'[', len == Some(0));
        Ok(Compound {
            encoder: self,
            brackets,
            names: Names::Written,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'e, 'a>, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'e, 'a>, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<'e, 'a>, JsonError> {
        Ok(Variant::open(self, variant, b'[', len == 0))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'e, 'a>, JsonError> {
        let brackets = self.open(b'{', len == Some(0));
        Ok(Compound {
            encoder: self,
            brackets,
            names: Names::Written,
        })
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Compound<'e, 'a>, JsonError> {
        let depth = self.indent;
        let names = match FieldNames::known(name, depth) {
            Some(names) => Names::Known { names, position: 0 },
            None => Names::Learning {
                name,
                depth,
                learning: Learning::default(),
            },
        };
        let mut compound = self.serialize_map(Some(len))?;
        compound.names = names;
        Ok(compound)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<'e, 'a>, JsonError> {
        Ok(Variant::open(self, variant, b'{', len == 0))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        self.element();
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), JsonError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), JsonError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        self.element();
        key.serialize(KeyEncoder(self.encoder.out))?;
        self.encoder.colon();
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.field_name(key);
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

/// An enum variant carrying a tuple or a struct: `{"variant":[…]}` or `{"variant":{…}}`.
pub struct Variant<'e, 'a> {
    outer: Brackets,
    inner: Compound<'e, 'a>,
}

impl<'e, 'a> Variant<'e, 'a> {
    fn open(encoder: &'e mut Encoder<'a>, variant: &str, bracket: u8, empty: bool) -> Self {
        let outer = encoder.open_variant(variant);
        let brackets = encoder.open(bracket, empty);
        Variant {
            outer,
            inner: Compound {
                encoder,
                brackets,
                names: Names::Written,
            },
        }
    }

    fn finish(self) {
        let Compound {
            encoder, brackets, ..
        } = self.inner;
        brackets.finish(encoder);
        self.outer.finish(encoder);
    }
}

impl ser::SerializeTupleVariant for Variant<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        ser::SerializeSeq::serialize_element(&mut self.inner, value)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Variant<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

/// Object keys: strings as they are; numbers, bools and chars quoted, as serde_json does.
struct KeyEncoder<'a>(&'a mut Vec<u8>);

impl KeyEncoder<'_> {
    fn quoted(self, text: &str) -> Result<(), JsonError> {
        write_str(self.0, text);
        Ok(())
    }
}

macro_rules! quoted_keys {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), JsonError> {
            self.quoted(&v.to_string())
        })*
    };
}

impl ser::Serializer for KeyEncoder<'_> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Impossible<(), JsonError>;
    type SerializeTuple = Impossible<(), JsonError>;
    type SerializeTupleStruct = Impossible<(), JsonError>;
    type SerializeTupleVariant = Impossible<(), JsonError>;
    type SerializeMap = Impossible<(), JsonError>;
    type SerializeStruct = Impossible<(), JsonError>;
    type SerializeStructVariant = Impossible<(), JsonError>;

    quoted_keys!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char);

    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.quoted(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        value.serialize(self)
    }
    fn serialize_f32(self, _: f32) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_f64(self, _: f64) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_none(self) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_unit(self) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, JsonError> {
        Err(JsonError::KeyNotText)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, JsonError> {
        Err(JsonError::KeyNotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::XorShift;
    use serde_json::{Map, Value, json};
    use std::collections::BTreeMap;

    fn compact<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        write_compact(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn pretty<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        write_pretty(&mut out, v, 0).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn same_as_serde_json<T: Serialize>(v: &T) {
        assert_eq!(compact(v), serde_json::to_string(v).unwrap());
        assert_eq!(pretty(v), serde_json::to_string_pretty(v).unwrap());
    }

    /// JSON values of every shape, from a deterministic generator.
    struct Values(XorShift);

    impl Values {
        fn next(&mut self) -> u64 {
            self.0.next()
        }

        fn value(&mut self, depth: u32) -> Value {
            let texts = [
                "",
                "a",
                "quote \" and \\",
                "ctl \u{1}\u{1f}\n\t",
                "ünï 🦀",
                "0123456789abcdefg",
            ];
            match self.next() % if depth > 3 { 5 } else { 7 } {
                0 => Value::Null,
                1 => Value::Bool(self.next().is_multiple_of(2)),
                2 => json!(self.next() as i64 >> (self.next() % 64)),
                3 => json!(
                    f64::from_bits(self.next() >> 2)
                        * if self.next().is_multiple_of(2) {
                            1.0
                        } else {
                            -1.0
                        }
                ),
                4 => Value::String(texts[(self.next() % 6) as usize].to_string()),
                5 => Value::Array(
                    (0..self.next() % 4)
                        .map(|_| self.value(depth + 1))
                        .collect(),
                ),
                _ => {
                    let mut map = Map::new();
                    for i in 0..self.next() % 4 {
                        map.insert(
                            format!("k{i}{}", texts[(self.next() % 6) as usize]),
                            self.value(depth + 1),
                        );
                    }
                    Value::Object(map)
                }
            }
        }
    }

    #[test]
    fn every_shape_of_value_is_written_as_serde_json_writes_it() {
        let mut values = Values(XorShift::new(0x9e37_79b9_7f4a_7c15));
        for _ in 0..5000 {
            same_as_serde_json(&values.value(0));
        }
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(u8, &'static str),
        EmptyTuple(),
        Struct { a: Option<u8>, b: Vec<u8> },
        EmptyStruct {},
    }

    #[derive(Serialize)]
    struct Record {
        shapes: Vec<Shape>,
        float: f32,
        not_finite: [f64; 3],
        by_number: BTreeMap<i32, char>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        unit: (),
    }

    #[test]
    fn enums_keys_floats_and_skipped_fields_match_serde_json() {
        same_as_serde_json(&Record {
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(7),
                Shape::Tuple(1, "x"),
                Shape::EmptyTuple(),
                Shape::Struct {
                    a: None,
                    b: vec![1, 2],
                },
                Shape::EmptyStruct {},
            ],
            float: 0.1,
            not_finite: [f64::NAN, f64::INFINITY, -0.0],
            by_number: BTreeMap::from([(-1, 'q'), (20, '"')]),
            skipped: None,
            unit: (),
        });
    }

    #[derive(Serialize)]
    struct Inner {
        #[serde(skip_serializing_if = "Option::is_none")]
        first: Option<u8>,
        #[serde(rename = "odd \"name\"\n")]
        odd: u8,
        last: &'static str,
    }

    #[derive(Serialize)]
    struct Outer {
        #[serde(skip_serializing_if = "Option::is_none")]
        maybe: Option<u32>,
        inner: Inner,
        list: Vec<Inner>,
        end: bool,
    }

    /// Struct names are learned from a struct's first record (per depth, when pretty) and
    /// reused: records whose fields come and go (skipped, first or not), nested at several
    /// depths, with names that need escaping, written one after another, compact and pretty,
    /// each as serde_json writes it.
    #[test]
    fn learned_field_names_give_what_serde_json_writes_whatever_fields_are_present() {
        let mut rng = XorShift::new(3);
        let inner = |rng: &mut XorShift| Inner {
            first: rng.next().is_multiple_of(2).then_some(1),
            odd: (rng.next() % 200) as u8,
            last: "x",
        };
        for _ in 0..200 {
            let record = Outer {
                maybe: rng.next().is_multiple_of(3).then_some(7),
                inner: inner(&mut rng),
                list: (0..rng.next() % 3).map(|_| inner(&mut rng)).collect(),
                end: rng.next().is_multiple_of(2),
            };
            same_as_serde_json(&record);
        }
    }

    #[derive(Serialize)]
    struct Message<'a> {
        id: u32,
        text: &'a str,
        body: TextOrBase64<'a>,
        body_encoding: &'static str,
        missing: Option<u8>,
    }

    fn message_line(text: &str, body: &[u8]) -> String {
        let body = TextOrBase64::of(body);
        compact(&Message {
            id: 7,
            text,
            body,
            body_encoding: body.encoding(),
            missing: None,
        })
    }

    #[test]
    fn a_literal_record_keeps_its_field_order_and_escapes_what_it_must() {
        assert_eq!(
            message_line("tab\t nul\u{0} bell\u{7} \"q\" \\", b"plain text\r\n"),
            r#"{"id":7,"text":"tab\t nul\u0000 bell\u0007 \"q\" \\","body":"plain text\r\n","body_encoding":"utf-8","missing":null}"#
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_travel_as_base64() {
        assert_eq!(
            message_line("", &[0x66, 0x6f, 0xff, 0x80]),
            r#"{"id":7,"text":"","body":"Zm//gA==","body_encoding":"base64","missing":null}"#
        );
        assert_eq!(
            message_line("", "ünï".as_bytes()),
            r#"{"id":7,"text":"","body":"ünï","body_encoding":"utf-8","missing":null}"#
        );
    }

    struct Shown(&'static str);

    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self.0)
        }
    }

    #[test]
    fn displayed_values_are_escaped_like_strings() {
        for text in ["plain", "", "a \"quote\"", "tab\there"] {
            same_as_serde_json(&Shown(text));
        }
        same_as_serde_json(&std::net::IpAddr::from([10, 99, 0, 1]));
        same_as_serde_json(&"::1".parse::<std::net::IpAddr>().unwrap());
    }

    #[test]
    fn bytes_are_base64_and_a_key_that_is_not_text_is_refused() {
        assert_eq!(compact(&BytesLike(b"hi")), "\"aGk=\"");
        let refused: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(write_compact(&mut Vec::new(), &refused).is_err());
    }

    struct BytesLike<'a>(&'a [u8]);

    impl Serialize for BytesLike<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
}
