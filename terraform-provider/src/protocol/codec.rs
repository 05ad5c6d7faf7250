//! The `DynamicValue` codec: MessagePack and JSON to [`Value`] and back, driven by the
//! [`Type`] the schema gives (Terraform's object wire format).
//!
//! - MessagePack: null is nil; an unknown value is any extension value (code 0, or 12 for a
//!   "refined" unknown whose refinements are ignored); numbers may come as integers, floats or
//!   decimal strings; objects are maps keyed by attribute name. The provider always answers in
//!   MessagePack, writing unknowns as extension 0 and every attribute of an object.
//! - JSON: only stored states arrive as JSON (`UpgradeResourceState`); it has no unknowns.
//!
//! Attributes that the type does not know are skipped when decoding (a state written by an
//! older schema), and missing ones decode as null.

use std::collections::BTreeMap;

use rmp::Marker;

use crate::error::{Error, Result};
use crate::proto::tfplugin6 as pb;
use crate::protocol::value::{Number, Type, Value};

/// MessagePack nesting deeper than this is refused instead of recursing without bound.
const MAX_DEPTH: usize = 64;

/// Decodes a `DynamicValue`, preferring MessagePack as Terraform does. An empty value (both
/// fields empty) is null.
pub fn decode_dynamic(dv: Option<&pb::DynamicValue>, ty: &Type) -> Result<Value> {
    match dv {
        None => Ok(Value::Null),
        Some(dv) if !dv.msgpack.is_empty() => decode_msgpack(&dv.msgpack, ty),
        Some(dv) if !dv.json.is_empty() => decode_json(&dv.json, ty),
        Some(_) => Ok(Value::Null),
    }
}

/// Encodes a value for Terraform (always MessagePack).
pub fn encode_dynamic(value: &Value, ty: &Type) -> Result<pb::DynamicValue> {
    Ok(pb::DynamicValue {
        msgpack: encode_msgpack(value, ty)?,
        json: Vec::new(),
    })
}

// ---- MessagePack: decoding ----------------------------------------------------------------

pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = r.value(ty, 0)?;
    if r.pos != bytes.len() {
        return Err(Error::Decode(format!(
            "{} trailing bytes after the value",
            bytes.len() - r.pos
        )));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Decode(what.into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("the MessagePack value ends early"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len16(&mut self) -> Result<usize> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }

    fn len32(&mut self) -> Result<usize> {
        usize::try_from(u32::from_be_bytes(self.be()?)).map_err(|_| bad("length overflows"))
    }

    fn marker(&mut self) -> Result<Marker> {
        Ok(Marker::from_u8(self.u8()?))
    }

    /// The payload length of an extension marker, or `None` for other markers.
    fn ext_len(&mut self, m: Marker) -> Result<Option<usize>> {
        Ok(Some(match m {
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Ext8 => usize::from(self.u8()?),
            Marker::Ext16 => self.len16()?,
            Marker::Ext32 => self.len32()?,
            _ => return Ok(None),
        }))
    }

    fn str_len(&mut self, m: Marker) -> Result<Option<usize>> {
        Ok(Some(match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 | Marker::Bin8 => usize::from(self.u8()?),
            Marker::Str16 | Marker::Bin16 => self.len16()?,
            Marker::Str32 | Marker::Bin32 => self.len32()?,
            _ => return Ok(None),
        }))
    }

    fn array_len(&mut self, m: Marker) -> Result<Option<usize>> {
        Ok(Some(match m {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => self.len16()?,
            Marker::Array32 => self.len32()?,
            _ => return Ok(None),
        }))
    }

    fn map_len(&mut self, m: Marker) -> Result<Option<usize>> {
        Ok(Some(match m {
            Marker::FixMap(n) => usize::from(n),
            Marker::Map16 => self.len16()?,
            Marker::Map32 => self.len32()?,
            _ => return Ok(None),
        }))
    }

    fn int(&mut self, m: Marker) -> Result<Option<i64>> {
        let out_of_range = || bad("an integer is out of range");
        Ok(Some(match m {
            Marker::FixPos(n) => i64::from(n),
            Marker::FixNeg(n) => i64::from(n),
            Marker::U8 => i64::from(self.u8()?),
            Marker::U16 => i64::from(u16::from_be_bytes(self.be()?)),
            Marker::U32 => i64::from(u32::from_be_bytes(self.be()?)),
            Marker::U64 => {
                i64::try_from(u64::from_be_bytes(self.be()?)).map_err(|_| out_of_range())?
            }
            Marker::I8 => i64::from(i8::from_be_bytes(self.be()?)),
            Marker::I16 => i64::from(i16::from_be_bytes(self.be()?)),
            Marker::I32 => i64::from(i32::from_be_bytes(self.be()?)),
            Marker::I64 => i64::from_be_bytes(self.be()?),
            _ => return Ok(None),
        }))
    }

    fn string(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| bad("a string is not UTF-8"))
    }

    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(bad("the value is nested too deeply"));
        }
        let m = self.marker()?;
        if m == Marker::Null {
            return Ok(Value::Null);
        }
        if let Some(len) = self.ext_len(m)? {
            // Any extension is an unknown value; refinements (code 12) are not used.
            self.take(len + 1)?;
            return Ok(Value::Unknown);
        }
        match ty {
            Type::Bool => match m {
                Marker::True => Ok(Value::Bool(true)),
                Marker::False => Ok(Value::Bool(false)),
                _ => Err(bad(format!("expected a bool, found {m:?}"))),
            },
            Type::String => match self.str_len(m)? {
                Some(len) => Ok(Value::String(self.string(len)?)),
                None => Err(bad(format!("expected a string, found {m:?}"))),
            },
            Type::Number => {
                if let Some(i) = self.int(m)? {
                    return Ok(Value::Number(Number::Int(i)));
                }
                match m {
                    Marker::F32 => Ok(Value::Number(Number::from_f64(f64::from(
                        f32::from_be_bytes(self.be()?),
                    )))),
                    Marker::F64 => Ok(Value::Number(Number::from_f64(f64::from_be_bytes(
                        self.be()?,
                    )))),
                    _ => match self.str_len(m)? {
                        Some(len) => parse_number(&self.string(len)?),
                        None => Err(bad(format!("expected a number, found {m:?}"))),
                    },
                }
            }
            Type::List(elem) | Type::Set(elem) => {
                let len = self
                    .array_len(m)?
                    .ok_or_else(|| bad(format!("expected an array, found {m:?}")))?;
                let mut items = Vec::with_capacity(len.min(1024));
                for _ in 0..len {
                    items.push(self.value(elem, depth + 1)?);
                }
                Ok(Value::List(items))
            }
            Type::Map(elem) => {
                let len = self
                    .map_len(m)?
                    .ok_or_else(|| bad(format!("expected a map, found {m:?}")))?;
                let mut out = BTreeMap::new();
                for _ in 0..len {
                    let key = self.key()?;
                    out.insert(key, self.value(elem, depth + 1)?);
                }
                Ok(Value::Map(out))
            }
            Type::Object(attrs) => {
                let len = self
                    .map_len(m)?
                    .ok_or_else(|| bad(format!("expected an object, found {m:?}")))?;
                let mut out: BTreeMap<String, Value> =
                    attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
                for _ in 0..len {
                    let key = self.key()?;
                    match attrs.get(&key) {
                        Some(t) => {
                            out.insert(key, self.value(t, depth + 1)?);
                        }
                        None => self.skip(depth + 1)?,
                    }
                }
                Ok(Value::Object(out))
            }
        }
    }

    fn key(&mut self) -> Result<String> {
        let m = self.marker()?;
        match self.str_len(m)? {
            Some(len) => self.string(len),
            None => Err(bad(format!("expected a string key, found {m:?}"))),
        }
    }

    /// Skips one value of any shape.
    fn skip(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(bad("the value is nested too deeply"));
        }
        let m = self.marker()?;
        if let Some(len) = self.ext_len(m)? {
            self.take(len + 1)?;
        } else if let Some(len) = self.str_len(m)? {
            self.take(len)?;
        } else if let Some(len) = self.array_len(m)? {
            for _ in 0..len {
                self.skip(depth + 1)?;
            }
        } else if let Some(len) = self.map_len(m)? {
            for _ in 0..2 * len {
                self.skip(depth + 1)?;
            }
        } else if self.int(m)?.is_none() {
            match m {
                Marker::F32 => {
                    self.take(4)?;
                }
                Marker::F64 => {
                    self.take(8)?;
                }
                Marker::Null | Marker::True | Marker::False => {}
                _ => return Err(bad(format!("unexpected MessagePack marker {m:?}"))),
            }
        }
        Ok(())
    }
}

fn parse_number(s: &str) -> Result<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::Number(Number::Int(i)));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| Value::Number(Number::from_f64(f)))
        .ok_or_else(|| bad(format!("{s:?} is not a number")))
}

// ---- MessagePack: encoding ----------------------------------------------------------------

pub fn encode_msgpack(value: &Value, ty: &Type) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_value(&mut out, value, ty)?;
    Ok(out)
}

fn mismatch(value: &Value, ty: &Type) -> Error {
    Error::Encode(format!("{value:?} does not have the type {}", ty.to_json()))
}

fn write_value(out: &mut Vec<u8>, value: &Value, ty: &Type) -> Result<()> {
    // Writing into a Vec cannot fail; rmp's errors only come from the writer.
    let io = |e: rmp::encode::ValueWriteError| Error::Encode(e.to_string());
    match (value, ty) {
        (Value::Null, _) => {
            rmp::encode::write_nil(out).map_err(|e| Error::Encode(e.to_string()))?;
        }
        (Value::Unknown, _) => out.extend_from_slice(&[0xd4, 0, 0]),
        (Value::Bool(b), Type::Bool) => {
            rmp::encode::write_bool(out, *b).map_err(|e| Error::Encode(e.to_string()))?;
        }
        (Value::Number(Number::Int(i)), Type::Number) => {
            rmp::encode::write_sint(out, *i).map_err(io)?;
        }
        (Value::Number(Number::Float(f)), Type::Number) => {
            rmp::encode::write_f64(out, *f).map_err(io)?;
        }
        (Value::String(s), Type::String) => rmp::encode::write_str(out, s).map_err(io)?,
        (Value::List(items), Type::List(elem) | Type::Set(elem)) => {
            rmp::encode::write_array_len(out, len32(items.len())?).map_err(io)?;
            for item in items {
                write_value(out, item, elem)?;
            }
        }
        (Value::Map(m), Type::Map(elem)) => {
            rmp::encode::write_map_len(out, len32(m.len())?).map_err(io)?;
            for (k, v) in m {
                rmp::encode::write_str(out, k).map_err(io)?;
                write_value(out, v, elem)?;
            }
        }
        (Value::Object(m), Type::Object(attrs)) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(Error::Encode(format!(
                    "attribute {extra:?} is not in the schema"
                )));
            }
            rmp::encode::write_map_len(out, len32(attrs.len())?).map_err(io)?;
            for (name, t) in attrs {
                rmp::encode::write_str(out, name).map_err(io)?;
                write_value(out, m.get(name).unwrap_or(&Value::Null), t)?;
            }
        }
        _ => return Err(mismatch(value, ty)),
    }
    Ok(())
}

fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Encode("collection too large".to_owned()))
}

// ---- JSON -----------------------------------------------------------------------------------

pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    from_json(&json, ty)
}

pub fn from_json(json: &serde_json::Value, ty: &Type) -> Result<Value> {
    use serde_json::Value as J;
    match (json, ty) {
        (J::Null, _) => Ok(Value::Null),
        (J::Bool(b), Type::Bool) => Ok(Value::Bool(*b)),
        (J::String(s), Type::String) => Ok(Value::String(s.clone())),
        (J::Number(n), Type::Number) => match n.as_i64() {
            Some(i) => Ok(Value::Number(Number::Int(i))),
            None => parse_number(&n.to_string()),
        },
        (J::String(s), Type::Number) => parse_number(s),
        (J::Array(items), Type::List(elem) | Type::Set(elem)) => items
            .iter()
            .map(|i| from_json(i, elem))
            .collect::<Result<_>>()
            .map(Value::List),
        (J::Object(m), Type::Map(elem)) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), from_json(v, elem)?)))
            .collect::<Result<_>>()
            .map(Value::Map),
        (J::Object(m), Type::Object(attrs)) => attrs
            .iter()
            .map(|(k, t)| Ok((k.clone(), from_json(m.get(k).unwrap_or(&J::Null), t)?)))
            .collect::<Result<_>>()
            .map(Value::Object),
        _ => Err(bad(format!(
            "JSON {json} does not have the type {}",
            ty.to_json()
        ))),
    }
}

/// JSON of a wholly known value (unknown values have no JSON form).
pub fn to_json(value: &Value) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Null => J::Null,
        Value::Unknown => return Err(Error::Encode("unknown values have no JSON form".into())),
        Value::Bool(b) => J::Bool(*b),
        Value::Number(Number::Int(i)) => J::from(*i),
        Value::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| Error::Encode(format!("{f} has no JSON form")))?,
        Value::String(s) => J::String(s.clone()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect::<Result<_>>()?),
        Value::Map(m) | Value::Object(m) => J::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_type() -> Type {
        Type::object([
            ("labels", Type::map(Type::String)),
            ("percent", Type::Number),
            ("version_id", Type::Number),
        ])
    }

    fn policy_type() -> Type {
        Type::object([
            ("id", Type::String),
            ("config_id", Type::Number),
            ("enabled", Type::Bool),
            ("rule", Type::list(rule_type())),
            ("tags", Type::Set(Box::new(Type::String))),
        ])
    }

    fn sample() -> Value {
        let rule = |labels: Value, percent: Value, v: i64| {
            Value::Object(BTreeMap::from([
                ("labels".to_owned(), labels),
                ("percent".to_owned(), percent),
                ("version_id".to_owned(), Value::int(v)),
            ]))
        };
        Value::Object(BTreeMap::from([
            ("id".to_owned(), Value::Unknown),
            ("config_id".to_owned(), Value::int(300)),
            ("enabled".to_owned(), Value::Bool(true)),
            (
                "rule".to_owned(),
                Value::List(vec![
                    rule(Value::Null, Value::Null, 1),
                    rule(
                        Value::Map(BTreeMap::from([(
                            "canary".to_owned(),
                            Value::string("true"),
                        )])),
                        Value::int(10),
                        -2,
                    ),
                ]),
            ),
            (
                "tags".to_owned(),
                Value::List(vec![Value::string("ü"), Value::string("x".repeat(40))]),
            ),
        ]))
    }

    #[test]
    fn msgpack_round_trips_every_shape() {
        let ty = policy_type();
        let v = sample();
        let bytes = encode_msgpack(&v, &ty).unwrap();
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), v);
    }

    #[test]
    fn unknowns_are_extension_values_of_any_code() {
        let bytes = encode_msgpack(&Value::Unknown, &Type::String).unwrap();
        assert_eq!(bytes, [0xd4, 0, 0]);
        // Refined unknowns (extension 12 with a refinement map such as {1: false}).
        let refined = [0xd5, 12, 0x81, 0x01];
        assert_eq!(
            decode_msgpack(&refined, &Type::String).unwrap(),
            Value::Unknown
        );
        let refined = [0xc7, 3, 12, 0x81, 0x01, 0xc2];
        assert_eq!(
            decode_msgpack(&refined, &Type::String).unwrap(),
            Value::Unknown
        );
    }

    #[test]
    fn numbers_arrive_in_every_encoding() {
        let t = Type::Number;
        // fixint, uint16, int8, float64 holding an integer, float, and a decimal string.
        assert_eq!(decode_msgpack(&[0x05], &t).unwrap(), Value::int(5));
        assert_eq!(
            decode_msgpack(&[0xcd, 0x01, 0x00], &t).unwrap(),
            Value::int(256)
        );
        assert_eq!(decode_msgpack(&[0xd0, 0xfe], &t).unwrap(), Value::int(-2));
        let mut f = vec![0xcb];
        f.extend_from_slice(&3.0f64.to_be_bytes());
        assert_eq!(decode_msgpack(&f, &t).unwrap(), Value::int(3));
        let mut f = vec![0xcb];
        f.extend_from_slice(&2.5f64.to_be_bytes());
        assert_eq!(
            decode_msgpack(&f, &t).unwrap(),
            Value::Number(Number::Float(2.5))
        );
        assert_eq!(decode_msgpack(b"\xa2\x34\x32", &t).unwrap(), Value::int(42));
        assert!(decode_msgpack(b"\xa1x", &t).is_err());
    }

    #[test]
    fn objects_fill_missing_attributes_and_skip_unknown_ones() {
        let ty = Type::object([("a", Type::String), ("b", Type::Number)]);
        // {"a": "x", "zz": [1, {"k": nil}]}
        let bytes = b"\x82\xa1a\xa1x\xa2zz\x92\x01\x81\xa1k\xc0";
        let v = decode_msgpack(bytes, &ty).unwrap();
        assert_eq!(
            v,
            Value::Object(BTreeMap::from([
                ("a".to_owned(), Value::string("x")),
                ("b".to_owned(), Value::Null),
            ]))
        );
        // Encoding writes every attribute, null included.
        let again = encode_msgpack(&v, &ty).unwrap();
        assert_eq!(again, b"\x82\xa1a\xa1x\xa1b\xc0");
    }

    #[test]
    fn malformed_msgpack_is_an_error_not_a_panic() {
        let ty = policy_type();
        let good = encode_msgpack(&sample(), &ty).unwrap();
        for cut in 0..good.len() {
            assert!(decode_msgpack(&good[..cut], &ty).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0xc0);
        assert!(decode_msgpack(&trailing, &ty).is_err());
        // Wrong shapes.
        assert!(decode_msgpack(b"\xa1x", &Type::Bool).is_err());
        assert!(decode_msgpack(b"\x01", &Type::list(Type::String)).is_err());
        // Deep nesting is bounded.
        let deep = vec![0x91; 1000];
        let mut t = Type::String;
        for _ in 0..1000 {
            t = Type::list(t);
        }
        assert!(decode_msgpack(&deep, &t).is_err());
    }

    #[test]
    fn encoding_refuses_values_of_the_wrong_type() {
        assert!(encode_msgpack(&Value::string("x"), &Type::Number).is_err());
        let ty = Type::object([("a", Type::String)]);
        let extra = Value::Object(BTreeMap::from([("b".to_owned(), Value::Null)]));
        assert!(encode_msgpack(&extra, &ty).is_err());
    }

    #[test]
    fn json_states_decode_by_schema() {
        let ty = policy_type();
        let json = br#"{"id": "7", "config_id": 300, "enabled": true, "old_attr": 1,
            "rule": [{"labels": null, "percent": null, "version_id": 1},
                     {"labels": {"canary": "true"}, "percent": "10", "version_id": -2}],
            "tags": ["\u00fc", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]}"#;
        let v = decode_json(json, &ty).unwrap();
        let mut expected = sample();
        if let Value::Object(m) = &mut expected {
            m.insert("id".to_owned(), Value::string("7"));
        }
        assert_eq!(v, expected);
        // And back through JSON.
        let again = from_json(&to_json(&v).unwrap(), &ty).unwrap();
        assert_eq!(again, v);
        assert!(to_json(&Value::Unknown).is_err());
        assert!(decode_json(br#"{"config_id": "abc"}"#, &ty).is_err());
        assert!(decode_json(b"{", &ty).is_err());
    }

    #[test]
    fn dynamic_values_prefer_msgpack_and_default_to_null() {
        let ty = Type::String;
        let dv = pb::DynamicValue {
            msgpack: encode_msgpack(&Value::string("m"), &ty).unwrap(),
            json: b"\"j\"".to_vec(),
        };
        assert_eq!(decode_dynamic(Some(&dv), &ty).unwrap(), Value::string("m"));
        let dv = pb::DynamicValue {
            msgpack: Vec::new(),
            json: b"\"j\"".to_vec(),
        };
        assert_eq!(decode_dynamic(Some(&dv), &ty).unwrap(), Value::string("j"));
        assert_eq!(decode_dynamic(None, &ty).unwrap(), Value::Null);
        let out = encode_dynamic(&Value::string("m"), &ty).unwrap();
        assert!(out.json.is_empty());
        assert_eq!(out.msgpack, b"\xa1m");
    }
}
