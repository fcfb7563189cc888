//! Text from clients kept bounded, by one rule: cut to at most a number of bytes, on a character
//! boundary (bytes are what memory and log lines pay for). The limits are named here, and every
//! place that keeps such text uses them. Tables that remember clients take their capacity from
//! a configured limit here too (`capacity`).

/// A tool or prompt name in audit events and span names.
pub(crate) const TOOL_NAME: usize = 128;
/// An `X-Request-Id` header in audit events.
pub(crate) const REQUEST_ID: usize = 128;
/// A user entity ref (`sub` of a Backstage user token).
pub(crate) const USER_REF: usize = 256;
/// A client name declared in `clientInfo` (label values, sharing findings).
pub(crate) const CLIENT_NAME: usize = 64;
/// An OAuth `client_id` (an opaque id, or a metadata document's URL) in audit events.
pub(crate) const CLIENT_ID: usize = 256;
/// A URL in audit events (protected-resource metadata and the URL clients dial).
pub(crate) const URL: usize = 512;
/// Each side of an MCP 2026-07-28 header that disagrees with the body.
pub(crate) const MISMATCH_VALUE: usize = 64;
/// The store's error text in a `store_lost` audit event.
pub(crate) const STORE_ERROR: usize = 200;

/// The capacity of a bounded table (an LRU cache) from a configured limit: at least one entry.
pub(crate) fn capacity(limit: usize) -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(limit.max(1)).expect("non-zero")
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn text_is_cut_in_bytes_on_a_character_boundary() {
        assert_eq!(cut("abcdef", 4), "abcd");
        assert_eq!(cut("abc", 128), "abc");
        // "é" is two bytes: cutting in the middle of it keeps the character out.
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("ééé", 5), "éé");
        assert_eq!(cut("", 3), "");
    }
}
