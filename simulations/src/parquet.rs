//! A minimal Parquet writer for flat tables: one row group, one uncompressed PLAIN data page
//! per column, every column required; whole numbers as INT64, real numbers as DOUBLE, text as
//! UTF-8 BYTE_ARRAY. pandas, polars and DuckDB read it as they read any Parquet file.
//!
//! The tables are a few thousand rows, so compression and statistics would buy nothing; the
//! `parquet` crate would bring a Thrift runtime and a dozen more crates into the binary's
//! build for what fits in this file. The file metadata is Thrift's compact protocol, written
//! by hand for the handful of structures Parquet needs.

use crate::output::Row;

/// The rows as a Parquet file.
pub fn write<R: Row>(rows: &[R]) -> Vec<u8> {
    let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
    let mut file = b"PAR1".to_vec();
    let mut chunks = Vec::new();
    for (c, &kind) in R::KINDS.iter().enumerate() {
        let mut values = Vec::new();
        for row in &cells {
            let cell = &row[c];
            match kind {
                'n' => values.extend(cell.parse::<i64>().unwrap_or(0).to_le_bytes()),
                'f' => values.extend(cell.parse::<f64>().unwrap_or(f64::NAN).to_le_bytes()),
                _ => {
                    values.extend((cell.len() as u32).to_le_bytes());
                    values.extend(cell.as_bytes());
                }
            }
        }
        let mut header = Compact::default();
        header.i32(1, 0); // DATA_PAGE
        header.i32(2, values.len() as i32);
        header.i32(3, values.len() as i32);
        header.begin_struct(5);
        header.i32(1, rows.len() as i32);
        header.i32(2, 0); // PLAIN
        header.i32(3, 3); // RLE (no levels: required columns)
        header.i32(4, 3);
        header.end_struct();
        header.stop();
        let offset = file.len() as i64;
        let size = (header.out.len() + values.len()) as i64;
        file.extend(&header.out);
        file.extend(&values);
        chunks.push((offset, size));
    }
    let physical = |kind: char| match kind {
        'n' => 2, // INT64
        'f' => 5, // DOUBLE
        _ => 6,   // BYTE_ARRAY
    };
    let mut meta = Compact::default();
    meta.i32(1, 1);
    meta.begin_list(2, R::COLUMNS.len() + 1, 12);
    meta.list_struct();
    meta.string(4, "schema");
    meta.i32(5, R::COLUMNS.len() as i32);
    meta.end_list_struct();
    for (name, &kind) in R::COLUMNS.iter().zip(R::KINDS) {
        meta.list_struct();
        meta.i32(1, physical(kind));
        meta.i32(3, 0); // REQUIRED
        meta.string(4, name);
        if kind == 's' {
            meta.i32(6, 0); // UTF8
        }
        meta.end_list_struct();
    }
    meta.i64(3, rows.len() as i64);
    meta.begin_list(4, 1, 12);
    meta.list_struct();
    meta.begin_list(1, R::COLUMNS.len(), 12);
    let total: i64 = chunks.iter().map(|c| c.1).sum();
    for ((name, &kind), &(offset, size)) in R::COLUMNS.iter().zip(R::KINDS).zip(&chunks) {
        meta.list_struct();
        meta.i64(2, offset);
        meta.begin_struct(3);
        meta.i32(1, physical(kind));
        meta.begin_list(2, 1, 5);
        meta.list_i32(0);
        meta.begin_list(3, 1, 8);
        meta.list_string(name);
        meta.i32(4, 0); // UNCOMPRESSED
        meta.i64(5, rows.len() as i64);
        meta.i64(6, size);
        meta.i64(7, size);
        meta.i64(9, offset);
        meta.end_struct();
        meta.end_list_struct();
    }
    meta.i64(2, total);
    meta.i64(3, rows.len() as i64);
    meta.end_list_struct();
    meta.string(6, "drawbridge simulations");
    meta.stop();
    file.extend(&meta.out);
    file.extend((meta.out.len() as u32).to_le_bytes());
    file.extend(b"PAR1");
    file
}

/// Thrift compact protocol, just what Parquet's metadata needs.
#[derive(Default)]
struct Compact {
    out: Vec<u8>,
    /// The last field id written, per open struct.
    last: Vec<i16>,
    current: i16,
}

impl Compact {
    fn varint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }

    fn zigzag(&mut self, n: i64) {
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    fn field(&mut self, id: i16, kind: u8) {
        let delta = id - self.current;
        if (1..=15).contains(&delta) {
            self.out.push((delta as u8) << 4 | kind);
        } else {
            self.out.push(kind);
            self.zigzag(i64::from(id));
        }
        self.current = id;
    }

    fn i32(&mut self, id: i16, value: i32) {
        self.field(id, 5);
        self.zigzag(i64::from(value));
    }

    fn i64(&mut self, id: i16, value: i64) {
        self.field(id, 6);
        self.zigzag(value);
    }

    fn string(&mut self, id: i16, value: &str) {
        self.field(id, 8);
        self.varint(value.len() as u64);
        self.out.extend(value.as_bytes());
    }

    fn begin_struct(&mut self, id: i16) {
        self.field(id, 12);
        self.last.push(self.current);
        self.current = 0;
    }

    fn end_struct(&mut self) {
        self.stop();
        self.current = self.last.pop().unwrap_or(0);
    }

    fn stop(&mut self) {
        self.out.push(0);
    }

    /// A list field of `size` elements of Thrift type `element` (5 i32, 8 binary, 12 struct);
    /// the elements follow.
    fn begin_list(&mut self, id: i16, size: usize, element: u8) {
        self.field(id, 9);
        if size < 15 {
            self.out.push((size as u8) << 4 | element);
        } else {
            self.out.push(0xf0 | element);
            self.varint(size as u64);
        }
    }

    fn list_struct(&mut self) {
        self.last.push(self.current);
        self.current = 0;
    }

    fn end_list_struct(&mut self) {
        self.end_struct();
    }

    fn list_i32(&mut self, value: i32) {
        self.zigzag(i64::from(value));
    }

    fn list_string(&mut self, value: &str) {
        self.varint(value.len() as u64);
        self.out.extend(value.as_bytes());
    }
}
