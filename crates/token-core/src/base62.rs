//! The base62 alphabet of the token format and the checksum written in it.

/// The alphabet, in this order: `0-9`, `A-Z`, `a-z`.
pub(crate) const ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether each byte value is one of the 62 characters of [`ALPHABET`]: a table, because the
/// range tests of `is_ascii_alphanumeric` branch on each of a token's 54 random characters, and
/// the mispredictions were most of the cost of parsing one.
const BASE62: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether `byte` is one of the 62 characters of [`ALPHABET`].
pub(crate) const fn is_base62(byte: u8) -> bool {
    BASE62[byte as usize]
}

/// Whether every byte of `bytes` is base62, without a branch per byte.
pub(crate) fn all_base62(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |all, &b| all & is_base62(b))
}

/// CRC-32 (IEEE, as zlib and `crc32fast` compute it) of `data`, written in base62 with the most
/// significant digit first, left-padded with `0` to six characters.
///
/// `62^6 > 2^32`, so every CRC-32 value fits in six digits.
pub(crate) fn checksum(data: &[u8]) -> [u8; 6] {
    let mut value = crc32fast::hash(data);
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_matches_is_base62() {
        for byte in 0..=255u8 {
            assert_eq!(is_base62(byte), ALPHABET.contains(&byte), "byte {byte}");
        }
    }

    #[test]
    fn checksum_is_crc32_in_base62_msd_first() {
        // CRC-32 of "123456789" is the classic check value 0xCBF43926; "3jZRME" is what Python's
        // zlib.crc32 plus the spec's base62 encoding gives for it (computed outside this crate).
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(&checksum(b"123456789"), b"3jZRME");
    }

    #[test]
    fn small_values_are_zero_padded() {
        // The empty input has CRC 0.
        assert_eq!(&checksum(b""), b"000000");
    }
}
