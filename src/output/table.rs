//! Aligned text tables for people at a terminal.

use std::io::{self, Write};

/// Write `rows` under `headers`, each column as wide as its widest cell; columns whose header
/// is in `right` are right-aligned (numbers).
pub fn write_table(
    out: &mut dyn Write,
    headers: &[&str],
    right: &[&str],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = width - cell.chars().count();
            if right.contains(&headers[i]) {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut headers.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["a.pcap".to_string(), "7".to_string()],
            vec!["longer.pcap".to_string(), "1234".to_string()],
        ];
        write_table(&mut out, &["path", "packets"], &["packets"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "path         packets\na.pcap             7\nlonger.pcap     1234\n"
        );
    }
}
