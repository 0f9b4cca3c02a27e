//! Untrusted text in messages: escaped, shortened, and located by line and column.
//!
//! Names, keys and values read from images, archives, registries and configuration files end up
//! in error messages and logs. Printed raw, a name could carry an ANSI escape sequence or a
//! carriage return that rewrites what the terminal shows (`\r\x1b[2Kverified ...`), or a bidi
//! override that makes it read differently than it is. [`sanitize`] renders all of those escaped
//! and cuts long text, so a message always shows what was actually there.
//!
//! ```
//! use cnb_untrusted::text::sanitize;
//!
//! let forged = "layer\r\x1b[2Kverified sha256:0000";
//! let shown = sanitize(forged, 200);
//! assert_eq!(shown, "layer\\r\\u{1b}[2Kverified sha256:0000");
//! assert_eq!(sanitize(&"x".repeat(10), 4), "xxxx…");
//! ```

/// Whether `c` must never reach a terminal or log raw: a control character (C0 such as ESC, CR,
/// LF, BEL; DEL; the C1 controls U+0080–U+009F, which include the 8-bit CSI), a bidi control
/// (the embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069, the marks U+200E,
/// U+200F and U+061C), or a line or paragraph separator (U+2028, U+2029).
///
/// ```
/// use cnb_untrusted::text::is_unsafe;
/// assert!(is_unsafe('\x1b') && is_unsafe('\r') && is_unsafe('\u{9b}') && is_unsafe('\u{202e}'));
/// assert!(!is_unsafe('a') && !is_unsafe('é') && !is_unsafe(' '));
/// ```
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `s` with every [unsafe](is_unsafe) character escaped (`\r`, `\u{1b}`, `\u{202e}`, ...) and
/// cut after `max_chars` characters, marked with `…`, so untrusted text cannot garble a
/// terminal, forge a line, or flood a log.
///
/// ```
/// use cnb_untrusted::text::sanitize;
/// assert_eq!(sanitize("a\tb\u{202e}c", 80), "a\\tb\\u{202e}c");
/// assert_eq!(sanitize("abcdef", 3), "abc…");
/// assert_eq!(sanitize("abc", 3), "abc");
/// ```
pub fn sanitize(s: &str, max_chars: usize) -> String {
    escape(s, max_chars, false)
}

/// Like [`sanitize`], and also escapes `"` and `\`, for text shown between double quotes (a JSON
/// key, for example), so it cannot end its quotes early.
///
/// ```
/// use cnb_untrusted::text::sanitize_quoted;
/// assert_eq!(sanitize_quoted("a\"b\\c\x1b", 80), "a\\\"b\\\\c\\u{1b}");
/// ```
pub fn sanitize_quoted(s: &str, max_chars: usize) -> String {
    escape(s, max_chars, true)
}

fn escape(s: &str, max_chars: usize, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars.saturating_add(44)));
    for (i, c) in s.chars().enumerate() {
        if i >= max_chars {
            out.push('…');
            break;
        }
        if is_unsafe(c) || (quotes && matches!(c, '"' | '\\')) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// 1-based (line, column) of a byte offset in `text`; the column counts characters. An offset
/// past the end, or inside a character, is moved back to the nearest character boundary.
///
/// ```
/// use cnb_untrusted::text::line_col;
/// assert_eq!(line_col("ab\ncé\nd", 6), (2, 3));
/// assert_eq!(line_col("ab", 99), (1, 3));
/// ```
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_status_line_comes_out_with_no_raw_esc_or_cr() {
        let forged = format!("\r\x1b[2Kverified sha256:{}", "0".repeat(64));
        let shown = sanitize(&forged, 200);
        assert!(
            !shown.contains('\r') && !shown.contains('\x1b'),
            "{shown:?}"
        );
        assert!(
            shown.starts_with("\\r\\u{1b}[2Kverified sha256:"),
            "{shown}"
        );
    }

    #[test]
    fn escapes_c0_del_c1_bel_and_bidi_controls() {
        for c in [
            '\0', '\x07', '\x08', '\t', '\n', '\x0b', '\x0c', '\r', '\x1b', '\x7f', '\u{80}',
            '\u{85}', '\u{9b}', '\u{9f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}',
            '\u{61c}', '\u{2028}', '\u{2029}',
        ] {
            let shown = sanitize(&format!("a{c}b"), 80);
            assert!(!shown.contains(c), "{c:?} -> {shown:?}");
            assert!(shown.starts_with("a\\") && shown.ends_with('b'), "{shown}");
        }
        // Printable text, including non-ASCII letters and symbols, is left alone.
        assert_eq!(sanitize("näme/ſK✓ \"q\" \\", 80), "näme/ſK✓ \"q\" \\");
    }

    #[test]
    fn truncates_by_characters_with_an_ellipsis() {
        assert_eq!(sanitize("", 0), "");
        assert_eq!(sanitize("a", 0), "…");
        assert_eq!(sanitize("éééé", 2), "éé…");
        let long = sanitize(&"\x1b".repeat(10_000), 200);
        assert_eq!(long.chars().filter(|c| *c == '…').count(), 1);
        assert!(long.len() < 200 * 6 + 4, "{}", long.len());
        assert_eq!(sanitize_quoted(&"\"".repeat(10), 3), "\\\"\\\"\\\"…");
    }

    #[test]
    fn line_col_counts_lines_and_characters() {
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("a\nb", 2), (2, 1));
        // Inside the two bytes of `é`: back to its start.
        assert_eq!(line_col("é", 1), (1, 1));
    }
}
