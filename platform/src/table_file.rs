//! Set-up data from spreadsheets: a CSV file with a header line, read by column name so the
//! columns may come in any order. Files exported by German spreadsheets are read as they come:
//! a byte-order mark is skipped, `;` separates the columns when the header has no `,`, and
//! numbers may have a decimal comma. An import of such a file says, per row, what it did
//! ([`Imported`]).

use std::collections::HashMap;

use serde::Serialize;

/// What can be wrong on a line, by code, in the English of the command line: `{name}` stands
/// for a value of the line. The consoles word each code in their own languages.
pub const PROBLEMS: [(&str, &str); 20] = [
    ("unreadable", "{detail}"),
    (
        "missing_columns",
        "the header line must name the columns {required}; it is missing {missing}",
    ),
    ("field_count", "has {found} fields; the header names {expected}"),
    (
        "not_a_number",
        "{column} must be a number like 48.7784, not \"{value}\"",
    ),
    (
        "centre_id",
        "id \"{id}\" is not a centre id: use 1 to 64 of a-z, 0-9 and -",
    ),
    ("name_and_address", "centre {id} needs a name and an address"),
    ("postcode", "postcode \"{postcode}\" must have five digits"),
    ("latitude", "latitude {value} is not between -90 and 90"),
    ("longitude", "longitude {value} is not between -180 and 180"),
    (
        "vaccine_code",
        "\"{code}\" is not a vaccine code (a-z, 0-9 and -)",
    ),
    ("centre_twice", "centre {id} is named on an earlier line too"),
    ("centre_of_other_region", "centre {id} belongs to region {region}"),
    (
        "unknown_vaccine",
        "the policy of region {region} has no vaccine \"{vaccine}\"; it knows {known}",
    ),
    ("postcode_twice", "postcode {postcode} is on an earlier line too"),
    (
        "username",
        "username \"{username}\" is invalid; use 3 to 64 characters from a-z, 0-9, '.', '_' and '-'",
    ),
    ("username_taken", "username \"{username}\" is taken"),
    ("username_twice", "username \"{username}\" is on line {line} too"),
    (
        "role",
        "\"{role}\" is not a role: use callcentre_agent, centre_staff, region_admin or analyst",
    ),
    (
        "centre_needed",
        "centre staff need a centre; other roles are not bound to one",
    ),
    (
        "unknown_centre",
        "there is no centre \"{centre}\" in region \"{region}\"",
    ),
];

/// `template` with each `{name}` replaced by its value.
pub fn fill(template: &str, values: &[(String, String)]) -> String {
    values.iter().fold(template.to_owned(), |text, (name, value)| {
        text.replace(&format!("{{{name}}}"), value)
    })
}

/// What is wrong on one line of a file (the header is line 1): a code of [`PROBLEMS`] with its
/// values, and the English sentence they make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub code: &'static str,
    pub values: Vec<(String, String)>,
    pub message: String,
}

impl LineError {
    /// The problem `code` (one of [`PROBLEMS`]) on `line`, with `values`.
    pub fn new(line: usize, code: &'static str, values: &[(&str, &dyn std::fmt::Display)]) -> LineError {
        let values: Vec<(String, String)> = values
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_string()))
            .collect();
        let template = PROBLEMS
            .iter()
            .find(|(known, _)| *known == code)
            .map_or("{detail}", |(_, template)| *template);
        LineError {
            line,
            code,
            message: fill(template, &values),
            values,
        }
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every problem of a file, one per line (at most), in line order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct FileErrors(pub Vec<LineError>);

/// One data line: its number in the file and its fields by column name.
#[derive(Debug)]
pub struct Line {
    pub number: usize,
    fields: HashMap<String, String>,
}

impl Line {
    /// A line made of a form's fields, so a form and a file are checked alike.
    pub fn from_fields(fields: impl IntoIterator<Item = (String, String)>) -> Line {
        Line {
            number: 1,
            fields: fields.into_iter().collect(),
        }
    }

    /// The field of `column`, trimmed; empty when the file has no such column.
    pub fn get(&self, column: &str) -> &str {
        self.fields.get(column).map_or("", |value| value.trim())
    }

    /// The field of `column` as a number; a decimal comma is read as a point.
    pub fn number(&self, column: &str) -> Result<f64, LineError> {
        let text = self.get(column).replace(',', ".");
        text.parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or_else(|| {
                LineError::new(
                    self.number,
                    "not_a_number",
                    &[("column", &column), ("value", &self.get(column))],
                )
            })
    }
}

/// Reads `text`: the header must name every column of `required`; other columns are kept for
/// [`Line::get`]. Blank lines are skipped.
pub fn read(text: &str, required: &[&str]) -> Result<Vec<Line>, FileErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header = text.lines().next().unwrap_or_default();
    let delimiter = if !header.contains(',') && header.contains(';') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = match reader.headers() {
        Ok(headers) => headers.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
        Err(error) => {
            return Err(FileErrors(vec![LineError::new(
                1,
                "unreadable",
                &[("detail", &error)],
            )]))
        }
    };
    let missing: Vec<&str> = required
        .iter()
        .filter(|name| !columns.iter().any(|column| column == *name))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(FileErrors(vec![LineError::new(
            1,
            "missing_columns",
            &[
                ("required", &required.join(", ")),
                ("missing", &missing.join(", ")),
            ],
        )]));
    }
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        match record {
            Ok(record) => {
                let number = record.position().map_or(0, |p| p.line() as usize);
                if record.iter().all(|field| field.trim().is_empty()) {
                    continue;
                }
                if record.len() != columns.len() {
                    errors.push(LineError::new(
                        number,
                        "field_count",
                        &[("found", &record.len()), ("expected", &columns.len())],
                    ));
                    continue;
                }
                let fields = columns
                    .iter()
                    .cloned()
                    .zip(record.iter().map(str::to_owned))
                    .collect();
                lines.push(Line { number, fields });
            }
            Err(error) => {
                let number = error.position().map_or(0, |p| p.line() as usize);
                errors.push(LineError::new(number, "unreadable", &[("detail", &error)]));
            }
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(FileErrors(errors))
    }
}

/// What saving a row did, or would do on a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Changed,
    Unchanged,
}

/// One row of an import and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct Row<T> {
    pub line: usize,
    pub row: T,
    pub change: Change,
}

/// The outcome of an import whose every line was right.
#[derive(Debug, Clone, Serialize)]
pub struct Imported<T> {
    /// Nothing was changed: this is what an import would do.
    pub dry_run: bool,
    pub rows: Vec<Row<T>>,
}

impl<T> Imported<T> {
    /// How many rows had the change `change`.
    pub fn count(&self, change: Change) -> usize {
        self.rows.iter().filter(|row| row.change == change).count()
    }
}

/// Keeps `errors` of lines read without one; answers the lines' values if there were none.
pub fn all_or_errors<T>(results: Vec<Result<T, LineError>>) -> Result<Vec<T>, FileErrors> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(FileErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_in_any_order_and_separator() {
        for text in [
            "b,a\n2,1\n\n4,3\n",
            "\u{feff}B;A\r\n2;1\r\n4;3\r\n",
            "a,b\n\"1\",\" 2 \"\n3,4\n",
        ] {
            let lines = read(text, &["a", "b"]).unwrap();
            let pairs: Vec<(&str, &str)> = lines.iter().map(|l| (l.get("a"), l.get("b"))).collect();
            assert_eq!(pairs, [("1", "2"), ("3", "4")], "{text:?}");
        }
    }

    #[test]
    fn a_missing_column_or_a_short_line_is_named_with_its_line() {
        let missing = read("a,c\n1,2\n", &["a", "b"]).unwrap_err();
        assert_eq!(missing.0[0].line, 1);
        assert!(missing.0[0].message.contains("missing b"), "{missing}");
        assert_eq!(missing.0[0].code, "missing_columns");
        let short = read("a,b\n1,2\n3\n5,6\n", &["a", "b"]).unwrap_err();
        assert_eq!(short.0.len(), 1);
        assert_eq!(short.0[0].to_string(), "line 3: has 1 fields; the header names 2");
    }

    #[test]
    fn numbers_take_a_decimal_comma() {
        let lines = read("lat;lon\n\"48,7784\";9.1\nx;1\n", &["lat", "lon"]).unwrap();
        assert_eq!(lines[0].number("lat").unwrap(), 48.7784);
        assert_eq!(lines[1].number("lat").unwrap_err().line, 3);
    }
}
