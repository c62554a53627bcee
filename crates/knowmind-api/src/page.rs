//! One page of any listing, and the cursor for the next.

/// A page of results and the cursor for the next one: the one paging shape of the API (tokens,
/// audit events, usage records).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
