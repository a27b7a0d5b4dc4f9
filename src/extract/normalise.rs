//! Normalisation applied to every text before anything is extracted from it: full-width ASCII
//! forms become their half-width originals, the ideographic space becomes a space, and ASCII
//! letters are lower-cased. Everything else is kept as it is.

/// Writes the normalised form of `text` into `out` (cleared first).
pub fn normalise_into(text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len());
    if text.is_ascii() {
        out.push_str(text);
        out.make_ascii_lowercase();
        return;
    }
    for c in text.chars() {
        out.push(normalise_char(c));
    }
}

/// The normalised form of `text`.
pub fn normalise(text: &str) -> String {
    let mut out = String::new();
    normalise_into(text, &mut out);
    out
}

fn normalise_char(c: char) -> char {
    match c {
        // FULLWIDTH EXCLAMATION MARK ..= FULLWIDTH TILDE map onto '!' ..= '~'.
        '\u{FF01}'..='\u{FF5E}' => {
            char::from_u32(c as u32 - 0xFF01 + 0x21).map_or(c, |a| a.to_ascii_lowercase())
        }
        '\u{3000}' => ' ',
        _ => c.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn full_width_ascii_becomes_half_width_and_lower_case() {
        assert_eq!(normalise("ＡＢＣ１２３！＃话题＃"), "abc123!#话题#");
    }

    #[test]
    fn ideographic_space_becomes_space() {
        assert_eq!(normalise("你好\u{3000}世界"), "你好 世界");
    }

    #[test]
    fn only_ascii_is_lower_cased() {
        assert_eq!(normalise("Hello ÄÖ 王者"), "hello ÄÖ 王者");
    }
}
