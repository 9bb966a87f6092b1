//! Printing for people (aligned tables and key/value blocks) and for scripts (JSON).
//!
//! Everything goes through [`out!`], which, unlike `println!`, does not panic when stdout is
//! closed early (`maas … | head`).

use std::io::Write;

use serde::Serialize;

/// `println!` that ignores a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Writes one line on stdout; a reader that went away (a broken pipe) is not an error here.
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n"));
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => out!("{text}"),
        // The API's types always serialize; say so rather than print nothing.
        Err(e) => eprintln!("error: cannot print the answer as JSON: {e}"),
    }
}

/// A table with a header row, columns padded to their widest cell.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new<const N: usize>(header: [&str; N]) -> Self {
        Table { rows: vec![header.iter().map(|h| h.to_string()).collect()] }
    }

    pub(crate) fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.into());
    }

    pub(crate) fn print(&self) {
        let _ = std::io::stdout().lock().write_all(self.render().as_bytes());
    }

    fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| self.rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Prints `key  value` lines with the values aligned.
pub(crate) fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (key, value) in pairs {
        out!("{key:<width$}  {value}");
    }
}

/// `1536` → `1.5 KiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A shape as `[1, 100]`, `-1` shown as `?`.
pub(crate) fn shape(dims: &[i64]) -> String {
    if dims == [maas_sdk::types::ANY_RANK] {
        return "any rank".into();
    }
    let dims: Vec<String> = dims.iter().map(|&d| if d < 0 { "?".into() } else { d.to_string() }).collect();
    format!("[{}]", dims.join(", "))
}

/// The first 12 hex digits of a digest, enough to tell files apart in a table.
pub(crate) fn short_digest(digest: &str) -> String {
    let (prefix, hex) = digest.split_once(':').unwrap_or(("", digest));
    let short: String = hex.chars().take(12).collect();
    if prefix.is_empty() { short } else { format!("{prefix}:{short}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let mut t = Table::new(["NAME", "N"]);
        t.row(["a".into(), "1".into()]);
        t.row(["longer".into(), "22".into()]);
        assert_eq!(t.render(), "NAME    N\na       1\nlonger  22\n");
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(200 << 20), "200.0 MiB");
        assert_eq!(shape(&[-1, 100]), "[?, 100]");
        assert_eq!(short_digest("sha256:0123456789abcdef"), "sha256:0123456789ab");
    }
}
