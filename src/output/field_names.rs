//! Struct field names as JSON writes them, learned once per struct type and depth: `,"name":`
//! (pretty: with the newline and indentation between) for each field in order, copied in one
//! piece for every later record instead of being scanned for escapes and written quote by
//! quote (a flow record has 38 fields and is written millions of times). Each field is still checked against the learned one (the same name, by
//! address and length) and written the long way when it differs, so a struct whose fields
//! vary from record to record is written right, only slower.

use std::cell::RefCell;

/// One field name as it was met: where its text lives, and its bytes with the comma before.
struct Learned {
    name: (usize, usize),
    with_comma: Box<[u8]>,
}

/// The learned names of one struct type, in order.
pub struct FieldNames {
    fields: Box<[Learned]>,
}

/// A name's identity, as serde gives it (a `&'static str`): its address and length.
fn identity(text: &'static str) -> (usize, usize) {
    (text.as_ptr() as usize, text.len())
}

/// A struct type at a depth of indentation (None: compact).
type Kind = ((usize, usize), Option<usize>);

thread_local! {
    /// Learned struct types. Each is leaked once per thread that writes it: a handful of record
    /// types, for the life of the process.
    static KNOWN: RefCell<Vec<(Kind, &'static FieldNames)>> = const { RefCell::new(Vec::new()) };
}

impl FieldNames {
    /// The names learned for the struct called `name` written at `depth`, if any.
    pub fn known(name: &'static str, depth: Option<usize>) -> Option<&'static FieldNames> {
        let kind = (identity(name), depth);
        KNOWN.with_borrow(|known| known.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f))
    }

    /// The bytes to write before field number `position` named `name`: without the comma for
    /// the first. None when this struct's field at that position was another.
    #[inline]
    pub fn prefix(&self, position: usize, name: &'static str) -> Option<&[u8]> {
        let learned = self.fields.get(position)?;
        if learned.name != identity(name) {
            return None;
        }
        Some(if position == 0 {
            &learned.with_comma[1..]
        } else {
            &learned.with_comma
        })
    }
}

/// The names of a struct's first record, being written: kept when the record is done.
#[derive(Default)]
pub struct Learning {
    fields: Vec<Learned>,
}

impl Learning {
    /// Field `name` was written as `written` (what follows the comma: any newline and
    /// indentation, its quoted, escaped text and the colon).
    pub fn field(&mut self, name: &'static str, written: &[u8]) {
        let mut with_comma = Vec::with_capacity(written.len() + 1);
        with_comma.push(b',');
        with_comma.extend_from_slice(written);
        self.fields.push(Learned {
            name: identity(name),
            with_comma: with_comma.into_boxed_slice(),
        });
    }

    /// The record of struct `name` at `depth` is done: its names serve the next records.
    pub fn keep(self, name: &'static str, depth: Option<usize>) {
        let kind = (identity(name), depth);
        KNOWN.with_borrow_mut(|known| {
            if !known.iter().any(|(k, _)| *k == kind) {
                let names: &'static FieldNames = Box::leak(Box::new(FieldNames {
                    fields: self.fields.into_boxed_slice(),
                }));
                known.push((kind, names));
            }
        });
    }
}
