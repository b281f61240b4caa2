//! RFC 8785 (JSON Canonicalization Scheme) for what the ledger hashes: a JSON value and
//! the envelope around it, written straight into one buffer.
//!
//! `serde_json_canonicalizer` serialises any `Serialize` type, which costs it a buffer per
//! member and a parse of every key to sort it; hashing an event is the inner loop of
//! appends and of `autolog verify`, so the members the ledger hashes are written here
//! directly. Strings are escaped by `serde_json` (the same escapes RFC 8785 asks for),
//! numbers other than integers up to 2^53 are left to `serde_json_canonicalizer`
//! (ECMAScript's number form), and the tests hold the output equal to that crate's for
//! any value.

use serde_json::{Map, Number, Value};

/// Appends the canonical form of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(out, members),
    }
}

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a &str always serialises.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The largest integer every IEEE double holds exactly (2^53): up to it an integer's
/// canonical form is its digits.
const EXACT: u64 = 1 << 53;

/// Appends an integer. RFC 8785 numbers are doubles: beyond 2^53 the double's form.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    if n <= EXACT {
        let _ = serde_json::to_writer(&mut *out, &n);
    } else {
        let _ = serde_json_canonicalizer::to_writer(&n, out);
    }
}

fn write_number(out: &mut Vec<u8>, n: &Number) {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => write_u64(out, u),
        (None, Some(i)) if i.unsigned_abs() <= EXACT => {
            let _ = serde_json::to_writer(&mut *out, &i);
        }
        // ECMAScript's shortest round-trip form (1.0 is "1", 1e21 is "1e+21").
        _ => {
            let _ = serde_json_canonicalizer::to_writer(n, out);
        }
    }
}

/// Members in the order of their names' UTF-16 code units. A map's own order is byte
/// order, which is the same whenever the names are ASCII: then no sorting is needed.
fn write_object(out: &mut Vec<u8>, members: &Map<String, Value>) {
    out.push(b'{');
    let in_order = members.keys().all(|k| k.is_ascii())
        && members
            .keys()
            .zip(members.keys().skip(1))
            .all(|(a, b)| a < b);
    if in_order {
        for (i, (key, value)) in members.iter().enumerate() {
            write_member(out, i, key, value);
        }
    } else {
        let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
        sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        for (i, (key, value)) in sorted.into_iter().enumerate() {
            write_member(out, i, key, value);
        }
    }
    out.push(b'}');
}

fn write_member(out: &mut Vec<u8>, i: usize, key: &str, value: &Value) {
    if i > 0 {
        out.push(b',');
    }
    write_str(out, key);
    out.push(b':');
    write_value(out, value);
}

/// Writes an object whose member names the caller gives in canonical order (ASCII names,
/// sorted): `name("a")` (then write its value) or `string("a", ..)`, then the next
/// name, and `end()`.
pub struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    members: usize,
}

impl<'a> ObjectWriter<'a> {
    pub fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, members: 0 }
    }

    /// The next member's name; the caller writes its value into the returned buffer.
    pub fn name(&mut self, name: &str) -> &mut Vec<u8> {
        debug_assert!(name.is_ascii());
        if self.members > 0 {
            self.out.push(b',');
        }
        self.members += 1;
        write_str(self.out, name);
        self.out.push(b':');
        self.out
    }

    pub fn string(&mut self, name: &str, value: &str) {
        let out = self.name(name);
        write_str(out, value);
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canonical(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, value);
        out
    }

    fn crate_form(value: &Value) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(value).expect("canonicalises")
    }

    #[test]
    fn rfc_8785_examples_match() {
        // RFC 8785 §3.2.3 (sorting by UTF-16 code units) and numbers in ECMAScript form.
        let value: Value = serde_json::from_str(
            r#"{
              "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis",
              "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001, 1.0, -0.0, 100],
              "literals": [null, true, false], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"/"
            }"#,
        )
        .expect("the RFC's example is JSON");
        assert_eq!(canonical(&value), crate_form(&value));
        let text = String::from_utf8(canonical(&value)).expect("UTF-8");
        assert!(
            text.starts_with(r#"{"\r":"Carriage Return","1":"One","#),
            "{text}"
        );
        assert!(
            text.contains(r#""numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27,1,0,100]"#),
            "{text}"
        );
        // UTF-16 order puts the emoji (a surrogate pair, D83D) before U+FB33; byte order
        // would not.
        let emoji = text.find('\u{1f600}').expect("emoji");
        let dalet = text.find('\u{fb33}').expect("dalet");
        assert!(emoji < dalet, "{text}");
    }

    #[test]
    fn integers_beyond_2_53_take_the_double_form() {
        let value = json!([
            9007199254740992u64,
            9007199254740993u64,
            -3232154566906228485i64,
            u64::MAX
        ]);
        assert_eq!(canonical(&value), crate_form(&value));
        assert_eq!(
            String::from_utf8(canonical(&value)).expect("UTF-8"),
            "[9007199254740992,9007199254740992,-3232154566906228700,18446744073709552000]"
        );
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
            "[a-z_]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner.clone(), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn equal_to_the_general_canonicaliser(value in any_json()) {
            prop_assert_eq!(canonical(&value), crate_form(&value));
        }
    }

    #[test]
    fn object_writer_writes_members_in_the_given_order() {
        let mut out = Vec::new();
        let mut o = ObjectWriter::begin(&mut out);
        o.string("a", "x\"y");
        write_u64(o.name("b"), 7);
        write_value(o.name("c"), &json!({"z": 1, "y": [true]}));
        o.end();
        assert_eq!(
            out,
            br#"{"a":"x\"y","b":7,"c":{"y":[true],"z":1}}"#.to_vec()
        );
    }
}
