//! Decode: a Kafka record's value bytes into a [`Decoded`] record, or a [`DecodeError`] that
//! says why not. Pure: no I/O. Borrows from the input where the JSON has no escapes.
//!
//! Only three fields are read — the group key (its name is configured per stream), `ts` and
//! `text` — and everything else in the object is skipped without being built.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// Group keys longer than this are refused: they become Redis keys.
pub const MAX_GROUP_KEY_BYTES: usize = 256;

/// A successfully decoded input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Value of the stream's `group_by` field; integers are written in decimal.
    pub group: Cow<'a, str>,
    /// Event time in epoch milliseconds: `ts`, or the Kafka timestamp when `ts` is absent.
    pub event_time: i64,
    /// The text to extract from.
    pub text: Cow<'a, str>,
}

/// Why a record could not be decoded. Every variant sends the record to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    NoValue,
    #[error("value is {size} bytes, more than input.max_message_bytes ({limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("value is not valid UTF-8 (at byte {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("value is not a JSON object: {0}")]
    NotJson(String),
    #[error("field {0:?} is missing")]
    MissingField(String),
    #[error("field {field:?} should be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("field {field:?} is empty or longer than {max} bytes", max = MAX_GROUP_KEY_BYTES)]
    BadGroupKey { field: String },
    #[error("no \"ts\" field and no Kafka timestamp")]
    NoTimestamp,
    #[error("event time {0} is not a plausible epoch-milliseconds time")]
    TimestampOutOfRange(i64),
    #[error(
        "event time {event_time} is {ahead_ms} ms ahead of the Kafka timestamp {kafka_timestamp}, \
         more than input.max_event_time_ahead ({max_ahead_ms} ms)"
    )]
    TimestampAhead {
        event_time: i64,
        kafka_timestamp: i64,
        ahead_ms: i64,
        max_ahead_ms: i64,
    },
    /// Not a decoding error: the record's pane holds too many groups (see the window module).
    #[error("its pane holds window.max_groups ({max_groups}) other groups already")]
    TooManyGroups { max_groups: usize },
}

impl DecodeError {
    /// Every [`kind`](Self::kind), for metrics that start at zero.
    pub const KINDS: [&'static str; 11] = [
        "no_value",
        "too_large",
        "invalid_utf8",
        "not_json",
        "missing_field",
        "wrong_type",
        "bad_group_key",
        "no_timestamp",
        "timestamp_out_of_range",
        "timestamp_ahead",
        "too_many_groups",
    ];

    /// A short stable code for headers and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NoValue => "no_value",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            DecodeError::NotJson(_) => "not_json",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::BadGroupKey { .. } => "bad_group_key",
            DecodeError::NoTimestamp => "no_timestamp",
            DecodeError::TimestampOutOfRange(_) => "timestamp_out_of_range",
            DecodeError::TimestampAhead { .. } => "timestamp_ahead",
            DecodeError::TooManyGroups { .. } => "too_many_groups",
        }
    }
}

/// Event times outside 1970..=2500 are refused: they would drag the watermark around.
const MAX_EVENT_TIME: i64 = 16_725_225_600_000;

/// Decodes one record value. `group_by` names the group-key field; `kafka_timestamp` is used
/// when the value has no `ts`.
pub fn decode<'a>(
    value: Option<&'a [u8]>,
    group_by: &str,
    kafka_timestamp: Option<i64>,
    max_bytes: usize,
) -> Result<Decoded<'a>, DecodeError> {
    let bytes = value.ok_or(DecodeError::NoValue)?;
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let json = std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let mut de = serde_json::Deserializer::from_str(json);
    let fields = FieldsSeed { group_by }
        .deserialize(&mut de)
        .and_then(|f| de.end().map(|()| f))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => unpack_data_error(e),
            _ => DecodeError::NotJson(e.to_string()),
        })?;

    let group = fields
        .group
        .ok_or_else(|| DecodeError::MissingField(group_by.to_owned()))?;
    if group.is_empty() || group.len() > MAX_GROUP_KEY_BYTES {
        return Err(DecodeError::BadGroupKey {
            field: group_by.to_owned(),
        });
    }
    let text = fields
        .text
        .ok_or_else(|| DecodeError::MissingField("text".to_owned()))?;
    let event_time = fields
        .ts
        .or(kafka_timestamp)
        .ok_or(DecodeError::NoTimestamp)?;
    if !(0..=MAX_EVENT_TIME).contains(&event_time) {
        return Err(DecodeError::TimestampOutOfRange(event_time));
    }
    Ok(Decoded {
        group,
        event_time,
        text,
    })
}

/// Refuses an event time more than `max_ahead_ms` ahead of the record's Kafka timestamp (the
/// broker's time or the producer's, either way not the input's own claim). Records without a
/// Kafka timestamp are not bounded here.
pub fn check_ahead(
    event_time: i64,
    kafka_timestamp: Option<i64>,
    max_ahead_ms: i64,
) -> Result<(), DecodeError> {
    match kafka_timestamp {
        Some(kafka) if event_time.saturating_sub(kafka) > max_ahead_ms => {
            Err(DecodeError::TimestampAhead {
                event_time,
                kafka_timestamp: kafka,
                ahead_ms: event_time - kafka,
                max_ahead_ms,
            })
        }
        _ => Ok(()),
    }
}

/// Field errors travel through serde as custom messages `field\u{0}expected`.
fn unpack_data_error(e: serde_json::Error) -> DecodeError {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    match msg.split_once('\u{0}') {
        Some((field, expected)) => DecodeError::WrongType {
            field: field.to_owned(),
            expected: match expected {
                "a string or an integer" => "a string or an integer",
                "an integer (epoch milliseconds)" => "an integer (epoch milliseconds)",
                _ => "a string",
            },
        },
        None => DecodeError::NotJson(msg.to_owned()),
    }
}

struct Fields<'a> {
    group: Option<Cow<'a, str>>,
    ts: Option<i64>,
    text: Option<Cow<'a, str>>,
}

struct FieldsSeed<'g> {
    group_by: &'g str,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields {
            group: None,
            ts: None,
            text: None,
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.group_by {
                let value = map.next_value::<Scalar<'de>>()?;
                fields.group = match value {
                    Scalar::Str(s) => Some(s),
                    Scalar::Int(i) => Some(Cow::Owned(i.to_string())),
                    Scalar::Null => None,
                    Scalar::Other => return Err(wrong(&key, "a string or an integer")),
                };
            } else if key == "ts" {
                fields.ts = match map.next_value::<Scalar<'de>>()? {
                    Scalar::Int(i) => Some(i),
                    Scalar::Null => None,
                    _ => return Err(wrong(&key, "an integer (epoch milliseconds)")),
                };
            } else if key == "text" {
                fields.text = match map.next_value::<Scalar<'de>>()? {
                    Scalar::Str(s) => Some(s),
                    _ => return Err(wrong(&key, "a string")),
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }
}

fn wrong<E: de::Error>(field: &str, expected: &str) -> E {
    E::custom(format_args!("{field}\u{0}{expected}"))
}

/// A JSON value reduced to what the three fields can be.
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Null,
    Other,
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed() {
        let errors = [
            DecodeError::NoValue,
            DecodeError::TooLarge { size: 2, limit: 1 },
            DecodeError::InvalidUtf8 { valid_up_to: 0 },
            DecodeError::NotJson(String::new()),
            DecodeError::MissingField(String::new()),
            DecodeError::WrongType {
                field: String::new(),
                expected: "a string",
            },
            DecodeError::BadGroupKey {
                field: String::new(),
            },
            DecodeError::NoTimestamp,
            DecodeError::TimestampOutOfRange(0),
            DecodeError::TimestampAhead {
                event_time: 0,
                kafka_timestamp: 0,
                ahead_ms: 0,
                max_ahead_ms: 0,
            },
            DecodeError::TooManyGroups { max_groups: 1 },
        ];
        let kinds: Vec<&str> = errors.iter().map(DecodeError::kind).collect();
        assert_eq!(kinds, DecodeError::KINDS);
    }

    #[test]
    fn an_event_time_far_ahead_of_the_kafka_timestamp_is_refused() {
        assert_eq!(check_ahead(1_000 + 300_000, Some(1_000), 300_000), Ok(()));
        let err = check_ahead(1_000 + 300_001, Some(1_000), 300_000).unwrap_err();
        assert_eq!(err.kind(), "timestamp_ahead");
        assert_eq!(
            err.to_string(),
            "event time 301001 is 300001 ms ahead of the Kafka timestamp 1000, more than \
             input.max_event_time_ahead (300000 ms)"
        );
        // Behind is fine (late records are judged by the windows), and so is no timestamp.
        assert_eq!(check_ahead(0, Some(16_725_225_600_000), 1), Ok(()));
        assert_eq!(check_ahead(16_725_225_600_000, None, 1), Ok(()));
    }

    fn dec(json: &str) -> Result<Decoded<'_>, DecodeError> {
        decode(Some(json.as_bytes()), "room_id", Some(7), 1024)
    }

    #[test]
    fn danmu_record_borrows_its_text() {
        let d = dec(r#"{"room_id":"r1001","user_id":"u42","ts":1763780000123,"text":"主播太强了666 #王者荣耀#"}"#)
            .unwrap();
        assert_eq!(d.group, "r1001");
        assert_eq!(d.event_time, 1763780000123);
        assert!(matches!(d.text, Cow::Borrowed("主播太强了666 #王者荣耀#")));
    }

    #[test]
    fn numeric_group_key_is_written_in_decimal() {
        assert_eq!(
            dec(r#"{"room_id":1001,"ts":5,"text":"x"}"#).unwrap().group,
            "1001"
        );
    }

    #[test]
    fn missing_ts_falls_back_to_kafka_timestamp() {
        assert_eq!(dec(r#"{"room_id":"a","text":"x"}"#).unwrap().event_time, 7);
        assert_eq!(
            decode(Some(br#"{"room_id":"a","text":"x"}"#), "room_id", None, 64),
            Err(DecodeError::NoTimestamp)
        );
    }

    #[test]
    fn escaped_text_is_unescaped() {
        assert_eq!(
            dec(r#"{"room_id":"a","text":"a\"b\u4e2d"}"#).unwrap().text,
            "a\"b中"
        );
    }

    #[test]
    fn bad_values_have_reasons() {
        assert_eq!(dec("not json").unwrap_err().kind(), "not_json");
        assert_eq!(dec("[1,2]").unwrap_err().kind(), "not_json");
        assert_eq!(
            dec(r#"{"room_id":"a","text":"x"} trailing"#)
                .unwrap_err()
                .kind(),
            "not_json"
        );
        assert_eq!(
            dec(r#"{"text":"x","ts":1}"#),
            Err(DecodeError::MissingField("room_id".into()))
        );
        assert_eq!(
            dec(r#"{"room_id":"a","ts":1}"#),
            Err(DecodeError::MissingField("text".into()))
        );
        assert_eq!(
            dec(r#"{"room_id":"a","ts":"soon","text":"x"}"#),
            Err(DecodeError::WrongType {
                field: "ts".into(),
                expected: "an integer (epoch milliseconds)"
            })
        );
        assert_eq!(
            dec(r#"{"room_id":[1],"text":"x"}"#),
            Err(DecodeError::WrongType {
                field: "room_id".into(),
                expected: "a string or an integer"
            })
        );
        assert_eq!(
            dec(r#"{"room_id":"a","text":5}"#).unwrap_err().to_string(),
            "field \"text\" should be a string"
        );
        assert_eq!(
            dec(r#"{"room_id":"","text":"x"}"#).unwrap_err().kind(),
            "bad_group_key"
        );
        assert_eq!(
            dec(r#"{"room_id":"a","ts":-5,"text":"x"}"#),
            Err(DecodeError::TimestampOutOfRange(-5))
        );
    }

    #[test]
    fn invalid_utf8_and_size_are_checked_first() {
        assert_eq!(
            decode(Some(b"{\"text\":\"\xff\"}"), "g", None, 64),
            Err(DecodeError::InvalidUtf8 { valid_up_to: 9 })
        );
        assert_eq!(
            decode(Some(b"0123456789"), "g", None, 4),
            Err(DecodeError::TooLarge { size: 10, limit: 4 })
        );
        assert_eq!(decode(None, "g", None, 4), Err(DecodeError::NoValue));
    }

    /// Property tests (fuzzing on stable Rust): `PROPTEST_CASES=N` runs N cases each
    /// (`scripts/fuzz.sh`); CI runs 256.
    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// JSON-ish values: objects with the fields decode reads, of every type, and junk.
        fn values() -> impl Strategy<Value = Vec<u8>> {
            let field = prop_oneof![
                Just("\"room_id\"".to_owned()),
                Just("\"ts\"".to_owned()),
                Just("\"text\"".to_owned()),
                "\"[a-z_]{0,6}\"".prop_map(|s| s),
            ];
            let scalar = prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|n| format!("{n:?}")),
                ".{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                Just("null".to_owned()),
                Just("[1,2]".to_owned()),
                Just("{}".to_owned()),
            ];
            let object = proptest::collection::vec((field, scalar), 0..5).prop_map(|fields| {
                let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", body.join(",")).into_bytes()
            });
            prop_oneof![object, proptest::collection::vec(any::<u8>(), 0..64)]
        }

        proptest! {
            #[test]
            fn decode_never_panics_and_what_it_accepts_is_in_bounds(
                value in values(),
                kafka_ts in proptest::option::of(any::<i64>()),
            ) {
                match decode(Some(&value), "room_id", kafka_ts, 1_000) {
                    Ok(d) => {
                        prop_assert!(!d.group.is_empty() && d.group.len() <= MAX_GROUP_KEY_BYTES);
                        prop_assert!((0..=MAX_EVENT_TIME).contains(&d.event_time));
                        prop_assert!(value.len() <= 1_000);
                    }
                    Err(err) => prop_assert!(!err.kind().is_empty()),
                }
            }
        }
    }
}
