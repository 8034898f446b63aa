//! Plain-text rendering for the operator commands: aligned key/value lines, simple tables, and
//! dates, without pulling in a formatting library.

use serde::Serialize;

use super::client::Answer;

/// `label: value` lines with the values aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(label, value)| {
            format!(
                "{:<width$}  {value}",
                format!("{label}:"),
                width = width + 1
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A table with a header row; columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let render = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        line.join("  ").trim_end().to_string()
    };
    let mut lines = vec![render(header.to_vec())];
    lines.extend(
        rows.iter()
            .map(|row| render(row.iter().map(String::as_str).collect())),
    );
    lines.join("\n")
}

/// `1700000000` -> `2023-11-14 22:13:20 UTC`.
pub fn unix_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whole sats of a msat amount, with the remainder shown only when there is one.
pub fn msat(amount_msat: u64) -> String {
    if amount_msat.is_multiple_of(1000) {
        format!("{} sat", amount_msat / 1000)
    } else {
        format!("{amount_msat} msat")
    }
}

/// Prints an answer readable, or as the node's JSON with `--json`.
pub(super) struct Printer {
    pub(super) json: bool,
}

impl Printer {
    pub(super) fn render<T: Serialize>(
        &self,
        answer: Answer<T>,
        readable: impl Fn(&T) -> String,
    ) -> String {
        if self.json {
            serde_json::to_string_pretty(&answer.json).expect("JSON values serialize")
        } else {
            readable(&answer.value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rendered_in_utc() {
        assert_eq!(unix_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(unix_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(unix_time(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn tables_align_columns() {
        let text = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(text, "A    LONGER\nxyz  1");
    }

    #[test]
    fn msat_amounts_show_sats_when_whole() {
        assert_eq!(msat(250_000), "250 sat");
        assert_eq!(msat(1_001), "1001 msat");
    }
}
