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
    // Only 'A'..='Z', U+3000 (lead byte 0xE3) and U+FF01..=U+FF5E (lead byte 0xEF) change;
    // runs between them are copied whole. Continuation bytes never equal these bytes, so a
    // hit is always the start of a character.
    let bytes = text.as_bytes();
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_uppercase() || b == 0xE3 || b == 0xEF) {
            i += 1;
            continue;
        }
        let c = text[i..].chars().next().expect("a character starts here");
        let to = normalise_char(c);
        if to != c {
            out.push_str(&text[copied..i]);
            out.push(to);
            copied = i + c.len_utf8();
        }
        i += c.len_utf8();
    }
    out.push_str(&text[copied..]);
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
    fn characters_around_the_changed_ones_are_kept() {
        assert_eq!(
            normalise("主播Ａ好\u{3000}看ＨＴＴＰ：／／x。Ｘ、ー"),
            "主播a好 看http://x。x、ー"
        );
    }

    #[test]
    fn only_ascii_is_lower_cased() {
        assert_eq!(normalise("Hello ÄÖ 王者"), "hello ÄÖ 王者");
    }
}
