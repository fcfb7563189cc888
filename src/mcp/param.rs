//! `Mcp-Param-*` headers (MCP 2026-07-28, SEP-2243): a tool's `inputSchema` may mark a property
//! with `x-mcp-header: "Region"`, and a client calling it over HTTP mirrors that argument as
//! `Mcp-Param-Region`, so intermediaries can route on it without reading the body. The tap
//! forwards them untouched; it learns the marked properties from `tools/list` answers and
//! checks each call's headers against its arguments, as the server must (which refuses a
//! disagreement with `-32020`). A marked property may sit in a nested object, reached through
//! `properties` chains (the only path the spec lets a header come from): its argument is found
//! at the same path, and named by it (`filter.region`).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::lenient::string_or_skip;

/// Marked properties kept per `tools/list` answer, at most.
const MAX_PER_ANSWER: usize = 64;
/// How deep in nested objects a marked property is looked for, at most.
const MAX_DEPTH: usize = 8;

/// A tool argument its schema mirrors into a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirrored {
    /// The argument's path, dotted (`region`, `filter.region`), as the audit names it.
    pub param: String,
    /// The same path, one property name per step.
    pub path: Vec<String>,
    /// The header's name after `Mcp-Param-`, in lower case.
    pub header: String,
    /// The property is an integer: `42` and `42.0` agree.
    pub integer: bool,
}

/// What a property says of its header: `x-mcp-header` and `type`; anything else is skipped, and
/// a property that is not an object says nothing.
#[derive(Default)]
struct RawProperty {
    header: Option<String>,
    integer: bool,
    /// Marked properties of an object property (its own `properties`).
    nested: Vec<Mirrored>,
}

impl<'de> Deserialize<'de> for RawProperty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PropertyVisitor)
    }
}

struct PropertyVisitor;

impl<'de> Visitor<'de> for PropertyVisitor {
    type Value = RawProperty;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawProperty, A::Error> {
        let mut p = RawProperty::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "x-mcp-header" => p.header = map.next_value::<Lenient>()?.0,
                "type" => p.integer = map.next_value::<Lenient>()?.0.as_deref() == Some("integer"),
                "properties" => p.nested = map.next_value::<Marked>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawProperty, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawProperty::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<RawProperty, E> {
        Ok(RawProperty::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<RawProperty, E> {
        Ok(RawProperty::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<RawProperty, E> {
        Ok(RawProperty::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<RawProperty, E> {
        Ok(RawProperty::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<RawProperty, E> {
        Ok(RawProperty::default())
    }
    fn visit_unit<E>(self) -> Result<RawProperty, E> {
        Ok(RawProperty::default())
    }
}

/// A string, or nothing for any other value.
struct Lenient(Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lenient(string_or_skip(d)?.map(Cow::into_owned)))
    }
}

/// `inputSchema.properties`, read for the properties marked `x-mcp-header`.
struct Properties;

impl<'de> Visitor<'de> for Properties {
    type Value = Vec<Mirrored>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of properties")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(param) = map.next_key::<Cow<'de, str>>()? {
            let p = map.next_value::<RawProperty>()?;
            if param.len() > 128 {
                continue;
            }
            // A nested property's path starts with this one's name.
            for mut n in p.nested.into_iter().filter(|n| n.path.len() < MAX_DEPTH) {
                n.param = format!("{param}.{}", n.param);
                n.path.insert(0, param.to_string());
                out.push(n);
            }
            if let Some(header) = p.header.filter(|h| !h.is_empty() && h.len() <= 64) {
                out.push(Mirrored {
                    param: param.to_string(),
                    path: vec![param.into_owned()],
                    header: header.to_ascii_lowercase(),
                    integer: p.integer,
                });
            }
        }
        out.truncate(MAX_PER_ANSWER);
        Ok(out)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

/// `inputSchema.properties`: the properties marked `x-mcp-header`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawSchema {
    #[serde(deserialize_with = "marked")]
    pub properties: Vec<Mirrored>,
}

fn marked<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mirrored>, D::Error> {
    d.deserialize_any(Properties)
}

/// A nested `properties`: its marked properties.
struct Marked(Vec<Mirrored>);

impl<'de> Deserialize<'de> for Marked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        marked(d).map(Marked)
    }
}

/// A header value as the client meant it: `=?base64?…?=` is decoded; `None` if that fails.
fn decoded(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    match text.strip_prefix("=?base64?").and_then(|t| t.strip_suffix("?=")) {
        Some(payload) => String::from_utf8(base64::engine::general_purpose::STANDARD.decode(payload).ok()?).ok(),
        None => Some(text.to_string()),
    }
}

/// An argument as its header carries it; `None` for null, objects and arrays (no header).
fn rendered(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn agree(m: &Mirrored, header: &str, value: &serde_json::Value, as_text: &str) -> bool {
    if m.integer {
        if let (Some(body), Ok(head)) = (value.as_f64(), header.parse::<f64>()) {
            return body.fract() == 0.0 && head == body;
        }
    }
    header == as_text
}

/// The argument at `path` (`None` if any step is missing or not an object).
fn argument<'a>(
    args: &'a serde_json::Map<String, serde_json::Value>,
    path: &[String],
) -> Option<&'a serde_json::Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(args.get(first)?, |value, step| value.as_object()?.get(step))
}

/// The marked properties of a call whose header disagrees with its argument: a header missing
/// for a value in the body, a different value, or one that cannot be decoded. `header(name)`
/// gives the request's `Mcp-Param-{name}`; `arguments` is the call's `params.arguments`.
pub(crate) fn mismatches<'m, 'h>(
    declared: &'m [Mirrored],
    header: impl Fn(&str) -> Option<&'h [u8]>,
    arguments: &[u8],
) -> Vec<&'m Mirrored> {
    let Ok(args) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(arguments) else {
        return Vec::new();
    };
    declared
        .iter()
        .filter(|m| {
            let Some(value) = argument(&args, &m.path) else { return false };
            let Some(as_text) = rendered(value) else { return false };
            match header(&m.header).map(decoded) {
                None => true,
                Some(None) => true,
                Some(Some(h)) => !agree(m, &h, value, &as_text),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Vec<Mirrored> {
        serde_json::from_str::<RawSchema>(json).unwrap().properties
    }

    #[test]
    fn marked_properties_are_read_and_hostile_shapes_skipped() {
        let s = schema(
            r#"{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"},"q":{"type":"string"},"odd":7,"bad":{"x-mcp-header":["x"]}}}"#,
        );
        assert_eq!(
            s.iter().map(|m| (m.param.as_str(), m.header.as_str(), m.integer)).collect::<Vec<_>>(),
            [("region", "region", false), ("n", "n", true)]
        );
        assert!(schema(r#"{"properties":[1,2]}"#).is_empty());
    }

    #[test]
    fn nested_marked_properties_are_found_at_their_path() {
        let declared = schema(
            r#"{"properties":{"filter":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"deep":{"properties":{"n":{"type":"integer","x-mcp-header":"N"}}}}},"top":{"x-mcp-header":"Top"}}}"#,
        );
        let paths: Vec<&str> = declared.iter().map(|m| m.param.as_str()).collect();
        assert_eq!(paths, ["filter.region", "filter.deep.n", "top"]);
        let check = |headers: &[(&str, &str)], args: &str| -> Vec<String> {
            let find = |name: &str| headers.iter().find(|(h, _)| *h == name).map(|(_, v)| v.as_bytes());
            mismatches(&declared, find, args.as_bytes()).into_iter().map(|m| m.param.clone()).collect()
        };
        let args = r#"{"filter":{"region":"us-west1","deep":{"n":3}},"top":"t"}"#;
        assert!(check(&[("region", "us-west1"), ("n", "3"), ("top", "t")], args).is_empty());
        assert_eq!(check(&[("region", "eu-north1"), ("n", "3"), ("top", "t")], args), ["filter.region"]);
        assert_eq!(check(&[("top", "t")], args), ["filter.region", "filter.deep.n"], "nested values need headers");
        assert!(check(&[("top", "t")], r#"{"filter":"flat","top":"t"}"#).is_empty(), "no object there: no value");
        // Nesting deeper than MAX_DEPTH is not followed; a deeply nested hostile schema is bounded.
        let nested = |depth: usize| {
            let deep = format!(
                "{}{}{}",
                r#"{"properties":{"a":"#.repeat(depth),
                r#"{"x-mcp-header":"X"}"#,
                "}}".repeat(depth)
            );
            schema(&deep).len()
        };
        assert_eq!((nested(MAX_DEPTH), nested(MAX_DEPTH + 1), nested(40)), (1, 0, 0));
    }

    #[test]
    fn headers_are_checked_against_the_arguments() {
        let declared = schema(
            r#"{"properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"},"flag":{"type":"boolean","x-mcp-header":"Flag"}}}"#,
        );
        let check = |headers: &[(&str, &str)], args: &str| -> Vec<String> {
            let find = |name: &str| headers.iter().find(|(h, _)| *h == name).map(|(_, v)| v.as_bytes());
            mismatches(&declared, find, args.as_bytes()).into_iter().map(|m| m.param.clone()).collect()
        };
        let all = [("region", "us-west1"), ("n", "42"), ("flag", "true")];
        assert!(check(&all, r#"{"region":"us-west1","n":42.0,"flag":true}"#).is_empty());
        assert_eq!(check(&all, r#"{"region":"eu-north1","n":42,"flag":true}"#), ["region"]);
        // A value in the body needs its header; null or absent needs none.
        assert_eq!(check(&[], r#"{"region":"us-west1","n":null}"#), ["region"]);
        assert!(check(&[], r#"{"q":"x"}"#).is_empty());
        // Base64-wrapped values are compared decoded; a broken wrapper disagrees.
        let wrapped = [("region", "=?base64?w6lzdA==?="), ("n", "7")];
        assert!(check(&wrapped, r#"{"region":"ést","n":7}"#).is_empty());
        assert_eq!(check(&[("region", "=?base64?%%%?=")], r#"{"region":"x"}"#), ["region"]);
        assert_eq!(check(&all, "not json").len(), 0);
    }
}
