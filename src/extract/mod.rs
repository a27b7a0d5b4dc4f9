//! Extract: from one message's text, the items to count — terms (Chinese word segmentation
//! with stop words and filters), hashtags, mentions, URL hosts, e-mail addresses and watched
//! keywords. Compiled once into an [`Extractor`]; pure functions of the text, no I/O.
//!
//! Each item counts once per message: a window's count of an item is the number of its
//! messages that contain the item.

mod entities;
mod normalise;

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, MatchKind};
use foldhash::fast::RandomState;
use jieba_rs::Jieba;
use serde::Serialize;

pub use entities::{Entity, EntityFinder};
pub use normalise::{normalise, normalise_into};

/// What kind of item was extracted. The order is the order of the lists in output records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Term,
    Hashtag,
    Mention,
    Url,
    Email,
    Keyword,
}

impl Category {
    /// The number of categories: the length of per-category arrays.
    pub const COUNT: usize = Category::Keyword as usize + 1;

    /// Every category, in [`index`](Category::index) order.
    pub const ALL: [Category; Category::COUNT] = [
        Category::Term,
        Category::Hashtag,
        Category::Mention,
        Category::Url,
        Category::Email,
        Category::Keyword,
    ];

    /// Index into per-category arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The built-in stop words, in the format [`parse_stop_words`] reads.
const STOP_WORDS: &str = include_str!("stopwords.txt");

/// The stop words of a stop-word file (the built-in list or `extract.stop_words_file`): one
/// word a line, surrounding white space ignored; blank lines and lines whose first
/// non-blank character is `#` are skipped (so a stop word cannot start with `#`).
pub fn parse_stop_words(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Settings of an [`Extractor`].
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub min_term_chars: usize,
    pub max_term_chars: usize,
    pub extra_stop_words: Vec<String>,
    pub watch_keywords: Vec<String>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            min_term_chars: 2,
            max_term_chars: 32,
            extra_stop_words: Vec::new(),
            watch_keywords: Vec::new(),
        }
    }
}

/// Reusable buffers, one per worker, so that extraction allocates little per message.
#[derive(Default)]
pub struct Scratch {
    normalised: String,
    term_text: String,
    /// The hasher of the set that keeps each item of a message once: seeded at random once
    /// per scratch (a message's items are attacker-controlled), not once per message.
    seen_hasher: RandomState,
}

pub struct Extractor {
    jieba: Jieba,
    entities: EntityFinder,
    stop_words: HashSet<String, RandomState>,
    keywords: Option<(AhoCorasick, Vec<String>)>,
    min_term_chars: usize,
    max_term_chars: usize,
}

impl Extractor {
    pub fn new(options: &ExtractOptions) -> Extractor {
        let extra = options
            .extra_stop_words
            .iter()
            .map(|w| w.trim())
            .filter(|w| !w.is_empty());
        let stop_words = parse_stop_words(STOP_WORDS)
            .chain(extra)
            .map(normalise)
            .collect();
        let keywords: Vec<String> = options
            .watch_keywords
            .iter()
            .map(|k| normalise(k.trim()))
            .collect();
        let keywords = (!keywords.is_empty()).then(|| {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&keywords)
                .expect("keywords compile");
            (ac, keywords)
        });
        Extractor {
            jieba: Jieba::new(),
            entities: EntityFinder::new(),
            stop_words,
            keywords,
            min_term_chars: options.min_term_chars,
            max_term_chars: options.max_term_chars,
        }
    }

    /// The stop words in effect — built-in and extra, normalised — in byte order.
    pub fn stop_words(&self) -> Vec<&str> {
        let mut words: Vec<&str> = self.stop_words.iter().map(String::as_str).collect();
        words.sort_unstable();
        words
    }

    /// Calls `emit` once for each distinct (category, item) in `text`.
    pub fn extract(&self, text: &str, scratch: &mut Scratch, mut emit: impl FnMut(Category, &str)) {
        let Scratch {
            normalised,
            term_text,
            seen_hasher,
        } = scratch;
        normalise_into(text, normalised);
        let normalised = normalised.as_str();

        // Entities; URLs, e-mails and mentions are cut out of the text that is segmented.
        let mut items: Vec<(Category, &str)> = Vec::new();
        term_text.clear();
        let mut copied = 0;
        self.entities.find(normalised, |e| {
            items.push((e.category, e.item));
            if e.category != Category::Hashtag {
                term_text.push_str(&normalised[copied..e.start]);
                term_text.push(' ');
                copied = e.end;
            }
        });
        term_text.push_str(&normalised[copied..]);

        if let Some((ac, keywords)) = &self.keywords {
            for m in ac.find_iter(normalised) {
                items.push((Category::Keyword, &keywords[m.pattern().as_usize()]));
            }
        }

        for token in self.jieba.cut(term_text, true) {
            let word = trim(token.word);
            if is_joined_ascii_run(word) {
                split_ascii_run(word, |piece| {
                    if self.is_term(piece, piece.len()) {
                        items.push((Category::Term, piece));
                    }
                });
                continue;
            }
            let chars = if word.len() == token.word.len() {
                token.end - token.start
            } else {
                word.chars().count()
            };
            if self.is_term(word, chars) {
                items.push((Category::Term, word));
            }
        }

        // Each item once, in the order first found (the same text gives the same order).
        let mut seen = HashSet::with_capacity_and_hasher(items.len(), seen_hasher.clone());
        for (category, item) in items {
            if seen.insert((category, item)) {
                emit(category, item);
            }
        }
    }

    fn is_term(&self, token: &str, chars: usize) -> bool {
        chars >= self.min_term_chars
            && chars <= self.max_term_chars
            && token.chars().any(is_letter)
            && !self.stop_words.contains(token)
    }

    /// Every item of `text`, grouped by category and sorted; for tests and tools.
    pub fn extract_all(&self, text: &str) -> [Vec<String>; Category::COUNT] {
        let mut out: [Vec<String>; Category::COUNT] = Default::default();
        self.extract(text, &mut Scratch::default(), |c, item| {
            out[c.index()].push(item.to_owned())
        });
        out.iter_mut().for_each(|items| items.sort_unstable());
        out
    }
}

/// Whether `word` is a run of ASCII letters and digits joined by `.`, `_` or `-`, which
/// jieba-rs keeps as one word (`win-xp`, `naunix.net`, `x_y`). No dictionary word holds these
/// characters, so such a word always comes from the segmenter's rule for non-Chinese runs.
#[inline]
fn is_joined_ascii_run(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.len() > 2
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..].iter().any(|b| matches!(b, b'.' | b'_' | b'-'))
}

/// Calls `piece` with each word Python jieba makes of an ASCII run: the matches of its
/// `[a-zA-Z0-9]+(?:\.\d+)?%?` (`win-xp` → `win`, `xp`; `v1.2.3` → `v1.2`, `3`; `3.5%` stays
/// whole). What lies between them (`.`, `_`, `-`) has no letter, so it is never a term and is
/// left out.
fn split_ascii_run<'t>(run: &'t str, mut piece: impl FnMut(&'t str)) {
    let bytes = run.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 2;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        if bytes.get(i) == Some(&b'%') {
            i += 1;
        }
        piece(&run[start..i]);
    }
}

/// `word.trim()`, with a quick answer when neither end can be white space: every white space
/// character is one of the bytes 0x09..=0x0D and 0x20, or starts with 0xC2, 0xE1, 0xE2 or 0xE3.
#[inline]
fn trim(word: &str) -> &str {
    let may_be_white = |lead: u8| matches!(lead, 0x09..=0x0D | b' ' | 0xC2 | 0xE1..=0xE3);
    let bytes = word.as_bytes();
    // The last character's first byte: continuation bytes are 0b10xx_xxxx.
    let last = bytes.iter().rev().find(|&&b| b & 0xC0 != 0x80);
    match (bytes.first(), last) {
        (Some(&first), Some(&last)) if !may_be_white(first) && !may_be_white(last) => word,
        _ => word.trim(),
    }
}

/// `char::is_alphabetic`, with the common cases first: ASCII and CJK ideographs.
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        matches!(c, '\u{4E00}'..='\u{9FFF}') || c.is_alphabetic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_agrees_with_the_standard_library_at_every_character() {
        for c in (0..0x3_0000).filter_map(char::from_u32) {
            for word in [
                format!("{c}"),
                format!("{c}x"),
                format!("x{c}"),
                format!("中{c}"),
                format!("{c}中"),
                format!("{c}中{c}"),
            ] {
                assert_eq!(trim(&word), word.trim(), "{:?}", c);
            }
        }
        assert_eq!(trim(""), "");
    }

    #[test]
    fn letters_are_what_unicode_says() {
        for c in ['a', 'Z', '中', '龥', 'é', 'ж', 'ひ', '한'] {
            assert!(is_letter(c) && c.is_alphabetic(), "{c}");
        }
        for c in ['6', ' ', '!', '😂', '，', '\u{3000}'] {
            assert!(!is_letter(c) && !c.is_alphabetic(), "{c:?}");
        }
    }

    #[test]
    fn ascii_runs_split_as_python_jieba_splits_them() {
        let split = |run: &str| {
            let mut pieces = Vec::new();
            split_ascii_run(run, |p| pieces.push(p.to_owned()));
            pieces
        };
        // Python jieba 0.42.1, `jieba.lcut`, without the pieces between the words.
        assert_eq!(split("win-xp"), ["win", "xp"]);
        assert_eq!(split("naunix.net"), ["naunix", "net"]);
        assert_eq!(split("foo_bar_baz"), ["foo", "bar", "baz"]);
        assert_eq!(split("v1.2.3-rc1"), ["v1.2", "3", "rc1"]);
        assert_eq!(split("ab.1x"), ["ab.1", "x"]);
        assert_eq!(split("abc.def.123"), ["abc", "def.123"]);
        assert_eq!(split("x.y%"), ["x", "y%"]);
        assert_eq!(split("50.5%"), ["50.5%"]);
        assert_eq!(split("2024-01-02"), ["2024", "01", "02"]);
        assert!(is_joined_ascii_run("a-b") && is_joined_ascii_run("3.5"));
        for word in ["ab", "-ab", "win10", "c++", "主播", "a-", "--"] {
            assert!(!is_joined_ascii_run(word), "{word}");
        }
    }

    #[test]
    fn stop_words_digits_and_single_characters_are_not_terms() {
        let ex = Extractor::new(&ExtractOptions::default());
        let [terms, ..] = ex.extract_all("我的天 666 2333 !!! 主播");
        assert_eq!(terms, vec!["主播".to_owned()]);
    }

    #[test]
    fn stop_word_files_skip_blank_lines_and_comments() {
        let text =
            "# a comment\n  主播 \n\n#no space is a comment too\n   # indented\nthe\r\nC# \n";
        let words: Vec<&str> = parse_stop_words(text).collect();
        assert_eq!(words, vec!["主播", "the", "C#"]);
        // The built-in list is read with the same rule: its comments are not stop words.
        assert!(parse_stop_words(STOP_WORDS).all(|w| !w.contains(' ')));
        assert!(parse_stop_words(STOP_WORDS).count() > 200);
    }

    #[test]
    fn each_item_counts_once_per_message() {
        let ex = Extractor::new(&ExtractOptions::default());
        let mut seen = Vec::new();
        ex.extract("主播 主播 主播", &mut Scratch::default(), |c, i| {
            seen.push((c, i.to_owned()))
        });
        assert_eq!(seen, vec![(Category::Term, "主播".to_owned())]);
    }

    #[derive(serde::Deserialize)]
    struct Cases {
        case: Vec<Case>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Case {
        name: String,
        text: String,
        #[serde(default)]
        terms: Vec<String>,
        #[serde(default)]
        hashtags: Vec<String>,
        #[serde(default)]
        mentions: Vec<String>,
        #[serde(default)]
        urls: Vec<String>,
        #[serde(default)]
        emails: Vec<String>,
    }

    #[test]
    fn cases_from_the_data_file() {
        let cases: Cases = toml::from_str(include_str!("../../tests/data/extract.toml")).unwrap();
        let ex = Extractor::new(&ExtractOptions::default());
        for case in cases.case {
            let [terms, hashtags, mentions, urls, emails, keywords] = ex.extract_all(&case.text);
            assert_eq!(terms, case.terms, "terms of {:?}", case.name);
            assert_eq!(hashtags, case.hashtags, "hashtags of {:?}", case.name);
            assert_eq!(mentions, case.mentions, "mentions of {:?}", case.name);
            assert_eq!(urls, case.urls, "urls of {:?}", case.name);
            assert_eq!(emails, case.emails, "emails of {:?}", case.name);
            assert!(keywords.is_empty());
        }
    }

    #[test]
    fn watched_keywords_match_after_normalisation() {
        let ex = Extractor::new(&ExtractOptions {
            watch_keywords: vec!["IPhone".into(), "退款".into()],
            ..ExtractOptions::default()
        });
        let out = ex.extract_all("ＩＰＨＯＮＥ太贵了，要退款");
        assert_eq!(out[Category::Keyword.index()], vec!["iphone", "退款"]);
    }

    /// Property tests (fuzzing on stable Rust); `PROPTEST_CASES=N` for more.
    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// Text as it comes: Chinese, ASCII words and marks, full-width forms, emoji, entities.
        fn texts() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                "[主播太强了今天天气真好王者荣耀]{1,6}",
                "[a-zA-Z0-9]{1,12}",
                "[-._#@:/ %]{1,3}",
                "[Ａ-Ｚ０-９　]{1,4}",
                Just("https://www.bilibili.com/video/x".to_owned()),
                Just("a.b@mail.qq.com".to_owned()),
                Just("#话题#".to_owned()),
                Just("@小明".to_owned()),
                Just("😀".to_owned()),
                ".{0,4}",
            ];
            proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat())
        }

        /// One extractor for every case: building one loads the dictionary.
        static EXTRACTOR: std::sync::LazyLock<(Extractor, ExtractOptions)> =
            std::sync::LazyLock::new(|| {
                let options = ExtractOptions {
                    watch_keywords: vec!["王者".to_owned(), "abc".to_owned()],
                    ..ExtractOptions::default()
                };
                (Extractor::new(&options), options)
            });

        proptest! {
            #[test]
            fn every_item_is_once_a_substring_of_the_normalised_text_and_in_bounds(
                text in texts(),
            ) {
                let (ex, options) = &*EXTRACTOR;
                let normalised = normalise(&text);
                let mut seen = std::collections::HashSet::new();
                ex.extract(&text, &mut Scratch::default(), |category, item| {
                    assert!(seen.insert((category, item.to_owned())), "{item} twice");
                    assert!(!item.is_empty());
                    assert!(
                        normalised.contains(item),
                        "{category:?} {item:?} not in {normalised:?}"
                    );
                    if category == Category::Term {
                        let chars = item.chars().count();
                        assert!((options.min_term_chars..=options.max_term_chars).contains(&chars));
                    }
                });
            }
        }
    }
}
