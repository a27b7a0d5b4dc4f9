//! Entities found by one regular expression over normalised text: URLs (counted by host),
//! e-mail addresses, Weibo topics `#话题#`, hashtags `#tag` and `@mentions`.
//!
//! The alternatives are tried left to right at each position, so an e-mail address is never
//! mistaken for a mention, and `#topic#` wins over `#tag`.

use regex::Regex;

use super::Category;

/// One entity: its category, the item to count, and the byte range it covers in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity<'t> {
    pub category: Category,
    pub item: &'t str,
    pub start: usize,
    pub end: usize,
}

pub struct EntityFinder {
    regex: Regex,
}

/// The longest topic or hashtag, and the longest mention, in characters; longer ones are not
/// entities (a run of 200 letters after '#' is not a tag, nor are its first 64).
const MAX_TAG_CHARS: usize = 64;
const MAX_MENTION_CHARS: usize = 30;
/// The longest host (a DNS name is at most 253 bytes) and e-mail address (a mail path is at
/// most 254 bytes): longer ones are not entities, so every item has a known maximum size.
const MAX_HOST_BYTES: usize = 253;
const MAX_EMAIL_BYTES: usize = 254;

/// The alternatives in priority order: URL, e-mail, `#topic#`, `#tag`, `@mention`. Lengths are
/// checked after matching: bounded repeats of Unicode classes (`{1,64}`) make the automaton
/// so large that matching posts ran 26 times slower.
const PATTERN: &str = r"(?x)
    https?://[a-z0-9\-._~:/?\#\[\]@!$&'()*+,;=%]+
  | [a-z0-9._%+\-]+ @ [a-z0-9\-]+ (?:\.[a-z0-9\-]+)* \.[a-z]{2,}
  | \# [^\#\s]+ \#
  | \# [\p{L}\p{N}_]+
  | @ [\p{L}\p{N}_\-]+
";

impl Default for EntityFinder {
    fn default() -> Self {
        Self::new()
    }
}

impl EntityFinder {
    pub fn new() -> Self {
        EntityFinder {
            regex: Regex::new(PATTERN).expect("entity pattern compiles"),
        }
    }

    /// Calls `found` for each entity in `text`, which must be normalised (lower-case ASCII).
    pub fn find<'t>(&self, text: &'t str, mut found: impl FnMut(Entity<'t>)) {
        // Every entity holds '#', '@' or "://"; most danmu hold none of them.
        if !text.bytes().any(|b| matches!(b, b'#' | b'@' | b':')) {
            return;
        }
        // Whole matches only (the fast path of the regex engine); which alternative matched is
        // plain from the first and last characters.
        for m in self.regex.find_iter(text) {
            let s = m.as_str();
            let (category, item, end) = if s.starts_with("http://") || s.starts_with("https://") {
                let url = s.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'']);
                match url_host(url) {
                    Some(host) if host.len() <= MAX_HOST_BYTES => {
                        (Category::Url, host, m.start() + url.len())
                    }
                    _ => continue,
                }
            } else if let Some(tag) = s.strip_prefix('#') {
                // `#topic#` or `#tag`: a tag never ends with '#'.
                let tag = tag.strip_suffix('#').unwrap_or(tag);
                if tag.chars().count() > MAX_TAG_CHARS {
                    continue;
                }
                (Category::Hashtag, tag, m.end())
            } else if let Some(name) = s.strip_prefix('@') {
                if name.chars().count() > MAX_MENTION_CHARS {
                    continue;
                }
                (Category::Mention, name, m.end())
            } else {
                if s.len() > MAX_EMAIL_BYTES {
                    continue;
                }
                (Category::Email, s, m.end())
            };
            found(Entity {
                category,
                item,
                start: m.start(),
                end,
            });
        }
    }
}

/// The host of an `http(s)://` URL, without user info, port or a leading `www.`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port.split(':').next()?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    (!host.is_empty() && host.contains('.')).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str) -> Vec<(Category, &str)> {
        let mut out = Vec::new();
        EntityFinder::new().find(text, |e| out.push((e.category, e.item)));
        out
    }

    #[test]
    fn url_is_counted_by_host() {
        assert_eq!(
            find("看这个https://www.bilibili.com/video/bv1?t=3好看"),
            vec![(Category::Url, "bilibili.com")]
        );
        assert_eq!(
            find("(http://a.b.cn:8080/x)."),
            vec![(Category::Url, "a.b.cn")]
        );
        assert_eq!(find("http://localhost/"), vec![]);
    }

    #[test]
    fn email_is_not_a_mention() {
        assert_eq!(
            find("联系 ab.c@mail.qq.com 或 @小明"),
            vec![
                (Category::Email, "ab.c@mail.qq.com"),
                (Category::Mention, "小明")
            ]
        );
    }

    #[test]
    fn weibo_topic_and_hashtag() {
        assert_eq!(
            find("#王者荣耀# 好玩 #rust2024 ##"),
            vec![
                (Category::Hashtag, "王者荣耀"),
                (Category::Hashtag, "rust2024")
            ]
        );
    }

    #[test]
    fn overlong_tags_and_mentions_are_not_entities() {
        let long = "长".repeat(65);
        assert_eq!(
            find(&format!("#{long}# #{long} #ok")),
            vec![(Category::Hashtag, "ok")]
        );
        let name = "n".repeat(31);
        assert_eq!(
            find(&format!("@{name} @{}", "n".repeat(30))),
            vec![(Category::Mention, "n".repeat(30).as_str())]
        );
    }

    #[test]
    fn overlong_hosts_and_addresses_are_not_entities() {
        let host = format!("{}.com", "h".repeat(249));
        let email = format!("{}@mail.com", "u".repeat(245));
        assert_eq!(
            find(&format!("http://{host}/ {email}")),
            vec![
                (Category::Url, host.as_str()),
                (Category::Email, email.as_str())
            ]
        );
        let (host, email) = (format!("h{host}"), format!("u{email}"));
        assert_eq!(find(&format!("http://{host}/ {email}")), vec![]);
    }

    #[test]
    fn entity_spans_cover_the_marks() {
        let mut spans = Vec::new();
        EntityFinder::new().find("a #b# @c", |e| spans.push((e.start, e.end)));
        assert_eq!(spans, vec![(2, 5), (6, 8)]);
    }
}
