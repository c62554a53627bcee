//! Text output: tables that fit the terminal, relative times, and colour only where wanted.

use std::io::IsTerminal;

use time::OffsetDateTime;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// JSON instead of text.
    pub json: bool,
    /// No warnings.
    pub quiet: bool,
    /// Colour on stderr.
    pub color: bool,
}

impl Style {
    /// From the global flags, `NO_COLOR` and whether stderr is a terminal.
    pub fn new(json: bool, quiet: bool, no_color: bool) -> Self {
        let color = !no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stderr().is_terminal();
        Style { json, quiet, color }
    }

    /// A warning on stderr (unless quiet).
    pub fn warn(&self, text: &str) {
        if !self.quiet {
            eprintln!("{}", self.paint("33", &format!("warning: {text}")));
        }
    }

    /// `text` in an ANSI colour when colour is on.
    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// "in 6 days", "3 hours ago", "just now", "never".
pub fn relative(at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let delta = at - now;
    let seconds = delta.whole_seconds().abs();
    if seconds < 60 {
        return if delta.is_positive() {
            "in less than a minute".to_owned()
        } else {
            "just now".to_owned()
        };
    }
    // The largest unit whose rounded count stays below the next unit: 59 min 59 s reads "1 hour",
    // 29 days 23 hours "30 days".
    let (n, unit) = [
        (60, "minute", 60),
        (3_600, "hour", 24),
        (86_400, "day", 31),
        (2_592_000, "month", 12),
        (31_536_000, "year", i64::MAX),
    ]
    .into_iter()
    .map(|(size, unit, below)| ((seconds + size / 2) / size, unit, below))
    .find(|(n, _, below)| n < below)
    .map_or((0, "year"), |(n, unit, _)| (n, unit));
    let plural = if n == 1 { "" } else { "s" };
    if delta.is_negative() {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

/// A time as people read it and machines parse it: `in 3 days (2026-12-02T14:23:59Z)`.
pub fn when(at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    match at {
        None => "never".to_owned(),
        Some(at) => {
            let exact = at
                .replace_nanosecond(0)
                .unwrap_or(at)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            format!("{} ({exact})", relative(Some(at), now))
        }
    }
}

/// A table without borders, laid out by display width (CJK and emoji count double) and wrapped
/// to fit `width` columns.
pub fn table(headers: &[&str], rows: &[Vec<String>], width: usize) -> String {
    table_dropping(headers, rows, width, &[])
}

/// The room a wrapping column needs to stay readable.
const PROSE_MIN: usize = 12;

/// [`table`], dropping the columns named in `droppable` (least useful first) while the rest do
/// not fit: ids, addresses, states and other single words stay whole — they are what a reader
/// copies — and prose columns wrap in what is left.
pub fn table_dropping(
    headers: &[&str],
    rows: &[Vec<String>],
    width: usize,
    droppable: &[&str],
) -> String {
    use unicode_width::UnicodeWidthStr;
    let whole_width = |i: usize| -> Option<usize> {
        let mut cells = rows.iter().filter_map(|row| row.get(i));
        cells
            .all(|cell| !cell.contains(' ') && cell.width() <= 24)
            .then(|| {
                rows.iter()
                    .filter_map(|row| row.get(i))
                    .map(|cell| cell.width())
                    .chain([headers[i].width()])
                    .max()
                    .unwrap_or(0)
            })
    };
    let needed = |kept: &[usize]| -> usize {
        kept.iter()
            .map(|&i| whole_width(i).unwrap_or(PROSE_MIN) + 2)
            .sum()
    };
    let mut kept: Vec<usize> = (0..headers.len()).collect();
    for name in droppable {
        if needed(&kept) <= width {
            break;
        }
        kept.retain(|&i| headers[i] != *name);
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_width(u16::try_from(width).unwrap_or(u16::MAX))
        .set_header(kept.iter().map(|&i| headers[i]));
    for row in rows {
        table.add_row(kept.iter().map(|&i| row.get(i).map_or("", String::as_str)));
    }
    if needed(&kept) <= width {
        for (column, &i) in kept.iter().enumerate() {
            if whole_width(i).is_some()
                && let Some(column) = table.column_mut(column)
            {
                column.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
            }
        }
    }
    table
        .to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The width to lay tables out in: the terminal's own when standard output is one, else
/// `COLUMNS`, else 120.
pub fn width() -> usize {
    terminal_columns()
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
        .filter(|&w| w >= 40)
        .unwrap_or(120)
}

/// The terminal's real width, when standard output is one (`COLUMNS` is often not exported).
fn terminal_columns() -> Option<usize> {
    #[cfg(unix)]
    {
        rustix::termios::tcgetwinsize(std::io::stdout())
            .ok()
            .map(|size| usize::from(size.ws_col))
            .filter(|&w| w > 0)
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = datetime!(2026-11-27 12:00 UTC);
        assert_eq!(
            relative(Some(now + Duration::days(6) + Duration::hours(1)), now),
            "in 6 days"
        );
        assert_eq!(relative(Some(now - Duration::hours(3)), now), "3 hours ago");
        assert_eq!(
            relative(Some(now + Duration::seconds(20)), now),
            "in less than a minute",
            "an expiry a few seconds away is not \"just now\""
        );
        assert_eq!(relative(Some(now - Duration::seconds(20)), now), "just now");
        assert_eq!(
            relative(
                Some(now + Duration::minutes(59) + Duration::seconds(50)),
                now
            ),
            "in 1 hour"
        );
        assert_eq!(relative(Some(now + Duration::days(30)), now), "in 30 days");
        assert_eq!(
            relative(Some(now - Duration::minutes(1)), now),
            "1 minute ago"
        );
        assert_eq!(relative(None, now), "never");
    }

    #[test]
    fn tables_fit_the_width_by_display_width() {
        let rows = vec![
            vec![
                "abc".to_owned(),
                "a very long name that does not fit".to_owned(),
                "read".to_owned(),
            ],
            vec![
                "def".to_owned(),
                "東京のノートパソコン".to_owned(),
                "write".to_owned(),
            ],
        ];
        let text = table(&["ID", "NAME", "SCOPES"], &rows, 30);
        let display = |line: &str| unicode_width::UnicodeWidthStr::width(line);
        assert!(text.lines().all(|l| display(l) <= 30), "{text}");
        assert!(text.contains("東京"), "{text}");
    }
}
