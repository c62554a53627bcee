//! Finding knowmind tokens where they do not belong: files and directories ([`files`]), what is
//! staged for a commit and every blob of a repository's history ([`git`]). Only real tokens
//! count: the text must have a knowmind prefix, the length and alphabet, stand alone (not inside
//! a longer word), and carry a valid checksum — a near-miss is not a finding. A finding names the
//! token's public id, never its secret; the secret is kept (wiped on drop) only to revoke it.

pub(crate) mod files;
pub(crate) mod git;
pub(crate) mod report;

use std::sync::LazyLock;

use token_core::{Token, TokenId, TokenKind};
use zeroize::Zeroizing;

/// One token found.
pub(crate) struct Finding {
    /// Where: a path relative to where the scan started (or to the repository's root).
    pub(crate) path: String,
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column, in characters.
    pub(crate) column: usize,
    /// The token's public id.
    pub(crate) token_id: TokenId,
    /// Its kind (API token, OAuth access or refresh token, client secret).
    pub(crate) kind: TokenKind,
    /// The commits that hold it (history scans only).
    pub(crate) commits: Vec<String>,
    secret: Zeroizing<String>,
}

impl std::fmt::Debug for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finding")
            .field("path", &self.path)
            .field("line", &self.line)
            .field("column", &self.column)
            .field("token_id", &self.token_id)
            .field("commits", &self.commits)
            .finish_non_exhaustive()
    }
}

impl Finding {
    /// The token itself, to send to the revocation endpoint (and nowhere else).
    pub(crate) fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// What a person may see of it: the prefix and public id, then an ellipsis.
    pub(crate) fn shown(&self) -> String {
        format!("{}{}…", self.kind.prefix(), self.token_id)
    }
}

/// The token pattern, on bytes (files need not be UTF-8).
static PATTERN: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(token_core::TOKEN_REGEX)
        .unwrap_or_else(|_| unreachable!("TOKEN_REGEX is a valid pattern, tested in token-core"))
});

/// Every token in `content`, reported with `path`.
pub(crate) fn scan_bytes(path: &str, content: &[u8]) -> Vec<Finding> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    // Lines are counted from the previous finding on, never from the start again.
    let (mut counted_to, mut line) = (0, 1);
    let (mut columns_from, mut column) = (0, 1);
    for m in PATTERN.find_iter(content) {
        let before = m.start().checked_sub(1).map(|i| content[i]);
        let after = content.get(m.end()).copied();
        if before.is_some_and(word) || after.is_some_and(|b| b.is_ascii_alphanumeric()) {
            continue; // part of a longer word: not a token
        }
        let Ok(text) = std::str::from_utf8(m.as_bytes()) else {
            continue;
        };
        let Ok(token) = text.parse::<Token>() else {
            continue; // a near-miss: the checksum does not hold
        };
        // Both searched from the previous finding on: a file of many findings on one line
        // costs one pass, not one pass per finding.
        let line_start = content[counted_to..m.start()]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(counted_to, |i| counted_to + i + 1);
        line += content[counted_to..line_start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        if line_start != counted_to || columns_from < line_start {
            (columns_from, column) = (line_start, 1);
        }
        column += String::from_utf8_lossy(&content[columns_from..m.start()])
            .chars()
            .count();
        (counted_to, columns_from) = (line_start, m.start());
        found.push(Finding {
            path: path.to_owned(),
            line,
            column,
            token_id: token.id(),
            kind: token.kind(),
            commits: Vec::new(),
            secret: Zeroizing::new(text.to_owned()),
        });
    }
    found
}

/// Whether content looks binary: a NUL byte in its first 8 KiB (what git decides by).
pub(crate) fn is_binary(content: &[u8]) -> bool {
    content[..content.len().min(8192)].contains(&0)
}

#[cfg(test)]
mod tests {
    use token_core::rand::SeedableRng;

    use super::*;

    #[test]
    fn only_real_standalone_tokens_are_found_with_their_place() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let token = Token::generate(&mut rng).unwrap();
        let real = token.expose_secret();
        let mut near = real.to_owned();
        let last = near.pop().unwrap();
        near.push(if last == 'A' { 'B' } else { 'A' });
        let content = format!("first line\nTOKEN={real}\nnear={near}\nglued=x{real}\n  é {real}\n");
        let found = scan_bytes("f.env", content.as_bytes());
        let places: Vec<(usize, usize)> = found.iter().map(|f| (f.line, f.column)).collect();
        assert_eq!(places, [(2, 7), (5, 5)], "{found:?}");
        assert_eq!(found[0].token_id, token.id());
        assert!(!format!("{found:?}").contains(real));
        assert!(!found[0].shown().contains(&real[20..]));
        let twice = format!("x\né {real} and {real}\n{real}");
        let places: Vec<(usize, usize)> = scan_bytes("f", twice.as_bytes())
            .iter()
            .map(|f| (f.line, f.column))
            .collect();
        assert_eq!(places, [(2, 3), (2, 66), (3, 1)]);
        assert!(is_binary(b"\x7fELF\0\0"));
        assert!(!is_binary(content.as_bytes()));
    }
}
