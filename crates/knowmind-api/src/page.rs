//! One page of any listing, and the cursor for the next.

/// A page of results and the cursor for the next one: the one paging shape of the API (tokens,
/// audit events, usage records).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass back as `cursor` to get the next page; `null` on the last page. Opaque.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` out of at most `limit`, whose next page starts after the last item's
    /// `cursor`: when the page is full there may be more, otherwise this is the last page.
    pub fn of(items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Self {
        let next_cursor = match items.last() {
            Some(last) if items.len() >= limit => Some(cursor(last)),
            _ => None,
        };
        Page { items, next_cursor }
    }
}

/// The number in a cursor: 1 to 18 ASCII digits, nothing else (no sign, no spaces) — exactly
/// what the document's cursor patterns say, so that a cursor the document allows is never
/// refused, and one it does not allow is never accepted.
pub fn cursor_number(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_numbers_are_plain_digits() {
        assert_eq!(cursor_number("0"), Some(0));
        assert_eq!(cursor_number("007"), Some(7));
        assert_eq!(
            cursor_number(&"9".repeat(18)),
            Some(999_999_999_999_999_999)
        );
        for bad in ["", "+5", "-5", " 5", "5 ", &"9".repeat(19), "٣"] {
            assert_eq!(cursor_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_full_page_points_to_the_next() {
        assert_eq!(
            Page::of(vec![1, 2], 2, i32::to_string)
                .next_cursor
                .as_deref(),
            Some("2")
        );
        assert_eq!(Page::of(vec![1], 2, i32::to_string).next_cursor, None);
        assert_eq!(Page::<i32>::of(vec![], 2, i32::to_string).next_cursor, None);
    }
}
