//! Field readers for hostile JSON: a field of the wrong type is skipped, never an error, and
//! nothing is buffered or copied on the way (serde's untagged enums would buffer every value).

use std::borrow::Cow;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use super::jsonrpc::Id;

/// Ids longer than this are not tracked (no pairing), so a client cannot make the tap hold big keys.
const MAX_ID_LEN: usize = 128;

/// What a visitor makes of each JSON type; the default skips it.
trait Pick<'de>: Sized {
    type Out;
    fn string(self, _s: Cow<'de, str>) -> Option<Self::Out> {
        None
    }
    fn unsigned(self, _n: u64) -> Option<Self::Out> {
        None
    }
    fn signed(self, _n: i64) -> Option<Self::Out> {
        None
    }
    fn float(self, _n: f64) -> Option<Self::Out> {
        None
    }
}

struct Lenient<P>(P);

impl<'de, P: Pick<'de>> Visitor<'de> for Lenient<P> {
    type Value = Option<P::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.string(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.string(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.0.string(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.0.unsigned(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.0.signed(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.0.float(v))
    }
    fn visit_bool<E>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

struct AnyId;

impl<'de> Pick<'de> for AnyId {
    type Out = Id;
    fn string(self, s: Cow<'de, str>) -> Option<Id> {
        (s.len() <= MAX_ID_LEN).then(|| Id::Str(s.as_ref().into()))
    }
    fn unsigned(self, n: u64) -> Option<Id> {
        Some(Id::Num(n.to_string().into()))
    }
    fn signed(self, n: i64) -> Option<Id> {
        Some(Id::Num(n.to_string().into()))
    }
    fn float(self, n: f64) -> Option<Id> {
        // serde_json's own spelling of the number, as the client's id was read before.
        serde_json::Number::from_f64(n).map(|n| Id::Num(n.to_string().into()))
    }
}

/// Ids are strings or numbers; anything else (null, objects, overlong) is not tracked.
pub(super) fn loose_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Id>, D::Error> {
    d.deserialize_any(Lenient(AnyId))
}

struct Text;

impl<'de> Pick<'de> for Text {
    type Out = Cow<'de, str>;
    fn string(self, s: Cow<'de, str>) -> Option<Cow<'de, str>> {
        Some(s)
    }
}

/// A field that should be a string but may be anything in hostile input: non-strings are skipped.
pub(super) fn string_or_skip<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    d.deserialize_any(Lenient(Text))
}

struct Integer;

impl Pick<'_> for Integer {
    type Out = i64;
    fn unsigned(self, n: u64) -> Option<i64> {
        i64::try_from(n).ok()
    }
    fn signed(self, n: i64) -> Option<i64> {
        Some(n)
    }
}

/// An integer field (a JSON-RPC error code); other types and fractions are skipped.
pub(super) fn integer_or_skip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(Lenient(Integer))
}

/// A keyed hash of a text the tap must match but never keep (MCP 2026-07-28 `requestState`).
pub(crate) fn hash_text(text: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x7265_7175_6573_7453).hash_one(text)
}

struct Hashed;

impl<'de> Pick<'de> for Hashed {
    type Out = u64;
    fn string(self, s: Cow<'de, str>) -> Option<u64> {
        Some(hash_text(&s))
    }
}

/// A string field kept only as its hash (`hash_text`); other types are skipped.
pub(super) fn hashed_or_skip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(Lenient(Hashed))
}

/// The keys of an object, as one hash that does not depend on their order (values skipped).
struct KeySet;

impl<'de> Visitor<'de> for KeySet {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut sum = 0u64;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            sum = sum.wrapping_add(hash_text(&key));
            map.next_value::<IgnoredAny>()?;
        }
        Ok(Some(sum))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Lenient(Text).visit_seq(seq).map(|_| None)
    }
    fn visit_borrowed_str<E>(self, _v: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _v: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _v: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _v: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _v: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The key set of an object field (`inputRequests`, `inputResponses`) as one hash; other types
/// are skipped.
pub(super) fn key_set_or_skip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(KeySet)
}

#[cfg(test)]
mod tests {
    use crate::mcp::jsonrpc::{decode, Id, Kind};

    fn one(s: &str) -> crate::mcp::jsonrpc::Message {
        decode(s.as_bytes(), 8).unwrap().remove(0)
    }

    #[test]
    fn wrong_types_are_skipped_not_fatal() {
        let m = one(r#"{"id":{"a":[1]},"method":"tools/call","params":{"name":["x"],"_meta":{"traceparent":7}}}"#);
        assert_eq!((m.id, m.target, m.traceparent), (None, None, None));
        assert_eq!(one(r#"{"id":2.5,"result":{}}"#).id, Some(Id::Num("2.5".into())));
        assert_eq!(one(r#"{"id":-3,"error":{"code":-32601.5}}"#).kind, Kind::Invalid);
        assert_eq!(one(r#"{"id":"7","error":{"code":-32601}}"#).kind, Kind::Error { code: -32601 });
    }

    #[test]
    fn current_list_results_are_learned_as_before() {
        // MCP 2026-07-28 list answers carry cache hints and a result type: no effect on names.
        let m = one(
            r#"{"id":1,"result":{"ttlMs":60000,"cacheScope":"private","resultType":"complete","tools":[{"name":"a"},{"name":"b"}]}}"#,
        );
        let Kind::Result(r) = m.kind else { panic!("not a result") };
        assert_eq!((r.tools, r.input_required), (Some(vec!["a".to_string(), "b".to_string()]), false));
        let asking = one(r#"{"id":2,"result":{"resultType":"input_required","inputRequests":{},"requestState":"s"}}"#);
        assert!(matches!(asking.kind, Kind::Result(ref r) if r.input_required && !r.is_error));
    }

    #[test]
    fn only_a_failed_result_has_its_text_read() {
        let failed =
            one(r#"{"id":1,"result":{"isError":true,"content":[{"type":"text","text":"NotFoundError: \"x\""}]}}"#);
        let Kind::Result(r) = failed.kind else { panic!("not a result") };
        assert_eq!(r.error_text.as_deref(), Some("NotFoundError: \"x\""));
        // Content of any shape is still a result.
        let odd = one(r#"{"id":1,"result":{"content":42,"isError":false}}"#);
        assert!(matches!(odd.kind, Kind::Result(ref r) if !r.is_error && r.error_text.is_none()));
    }
}
