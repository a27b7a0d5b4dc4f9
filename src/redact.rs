//! Redaction: what never leaves the process in clear — `check-config` output, logs and error
//! messages all go through here.
//!
//! Two kinds of secret:
//!
//! - **Secret properties.** A name is secret when one of its dot-separated parts, lowercased,
//!   is `key` or contains `password`, `passwd` or `secret`: librdkafka's `sasl.password`,
//!   `ssl.key.password`, `ssl.keystore.password`, `ssl.key.pem`,
//!   `sasl.oauthbearer.client.secret`, and also `ssl.key.location` (a path; hiding it costs
//!   nothing). Parts are split on dots only, so trendstream's own `redis.key_prefix` or
//!   `streams.<name>.group_by` are not secret, nor is `ssl.keystore.location`. The whole value
//!   is replaced.
//! - **URL user info.** Whatever stands between `://` and the `@` before the host, as in
//!   `redis://user:pass@host:6379` or `rediss://:pass@host`, in any text.

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

/// Whether a property or key named `name` holds a secret (see the module docs).
pub fn is_secret(name: &str) -> bool {
    name.split('.').any(|part| {
        let part = part.to_ascii_lowercase();
        part == "key"
            || part.contains("password")
            || part.contains("passwd")
            || part.contains("secret")
    })
}

/// `value` as it may be shown under the name `name`: [`REDACTED`] if the name is secret,
/// otherwise with the user info of any URL in it replaced.
pub fn value(name: &str, value: &str) -> String {
    if is_secret(name) {
        REDACTED.to_owned()
    } else {
        text(value)
    }
}

/// Writes `settings` for `Debug`: `name` and the fields in JSON on one line, from a copy whose
/// secrets `redact` has replaced, so that a `Debug` print shows what `check-config` shows.
pub fn debug_settings<T: Clone + serde::Serialize>(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    settings: &T,
    redact: fn(&mut T),
) -> std::fmt::Result {
    let mut shown = settings.clone();
    redact(&mut shown);
    let fields = serde_json::to_string(&shown).map_err(|_| std::fmt::Error)?;
    write!(f, "{name} {fields}")
}

/// `err` and its causes on one line, as [`text`] allows: each message after the one it
/// explains, joined by `": "` (like `{:#}` of an `anyhow::Error`). A cause whose text its
/// parent's message holds already is left out: some errors (rdkafka's `KafkaError`, redis's
/// `RedisError`) print their source in their own message, and each cause is shown once.
pub fn error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let message = err.to_string();
        // Held by the last message shown: by the parent, or by what holds the parent.
        if shown.last().is_none_or(|parent| !parent.contains(&message)) {
            shown.push(message);
        }
        next = err.source();
    }
    text(&shown.join(": "))
}

/// `text` with the user info of every URL in it replaced by [`REDACTED`]:
/// `redis://user:pass@host:6379/0` → `redis://***@host:6379/0`. The user info is taken to end
/// at the last `@` before the end of the authority, so an unescaped `@` in a password is
/// hidden too; text without such a URL comes back unchanged.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_len = authority_len(tail);
        match tail[..authority_len].rfind('@') {
            Some(user_info_len) => {
                out.push_str(REDACTED);
                rest = &tail[user_info_len..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Where the authority at the start of `tail` (just after `://`) ends: at `/`, `?`, `#`,
/// whitespace, a quote, or a comma before the next URL of a list.
fn authority_len(tail: &str) -> usize {
    for (i, c) in tail.char_indices() {
        let ends = match c {
            '/' | '?' | '#' | '"' | '\'' | '`' => true,
            ',' => starts_with_scheme(tail[i + 1..].trim_start()),
            c => c.is_whitespace(),
        };
        if ends {
            return i;
        }
    }
    tail.len()
}

/// Whether `s` starts like `redis://`.
fn starts_with_scheme(s: &str) -> bool {
    let scheme_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .unwrap_or(s.len());
    scheme_len > 0 && s[scheme_len..].starts_with("://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_shows_each_cause_once_after_its_context_and_redacted() {
        /// Prints its source in its own message, as `RedisError` does.
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Repeats(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("cannot connect to redis://me:hunter2@h:1")]
        struct Connect(#[source] Repeats);
        #[derive(Debug, thiserror::Error)]
        #[error("gave up")]
        struct GaveUp(#[source] Connect);

        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = GaveUp(Connect(Repeats(io)));
        assert_eq!(
            error(&err),
            "gave up: cannot connect to redis://***@h:1: connection refused"
        );

        // rdkafka's errors print their error code, and give it as their source.
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let code = RDKafkaErrorCode::BrokerTransportFailure;
        let err = KafkaError::MetadataFetch(code);
        assert_eq!(error(&err), err.to_string());
        assert_eq!(err.to_string().matches(&code.to_string()).count(), 1);
    }

    #[test]
    fn password_secret_and_key_parts_are_secret() {
        for name in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "ssl.key.location",
            "SASL.PASSWORD",
            "sasl.passwd",
        ] {
            assert!(is_secret(name), "{name}");
        }
    }

    #[test]
    fn names_that_only_mention_a_key_are_not_secret() {
        for name in [
            "redis.key_prefix",
            "streams.danmu.group_by",
            "ssl.keystore.location",
            "sasl.username",
            "bootstrap.servers",
            "linger.ms",
            "monkey.business",
        ] {
            assert!(!is_secret(name), "{name}");
        }
    }

    #[test]
    fn secret_values_are_replaced_whole() {
        assert_eq!(value("sasl.password", "0123"), "***");
        assert_eq!(value("linger.ms", "5"), "5");
    }

    #[test]
    fn url_user_info_is_replaced() {
        for (url, shown) in [
            ("redis://user:pass@host:6379", "redis://***@host:6379"),
            ("rediss://:pass@host", "rediss://***@host"),
            ("redis://:p@ss@host/0", "redis://***@host/0"),
            ("redis://host:6379/0", "redis://host:6379/0"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://:a@h1:7000,redis://:b@h2:7001",
                "redis://***@h1:7000,redis://***@h2:7001",
            ),
            ("redis://:pa,ss@host", "redis://***@host"),
            (
                "cannot connect to Redis at redis://u:pw@h:1: refused",
                "cannot connect to Redis at redis://***@h:1: refused",
            ),
            ("no url here @ all", "no url here @ all"),
        ] {
            assert_eq!(text(url), shown, "{url}");
        }
    }
}
