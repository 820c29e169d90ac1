//! A zero-copy reader of JSON objects, for the hot path of event ingestion.
//!
//! It walks one object, hands each top-level key with its value to a callback and skips what
//! the callback does not want without building it: strings come back borrowed from the line
//! unless they hold escapes, numbers as f64, nested objects as a nested reader. The whole text
//! is checked to be one well-formed JSON object, so a truncated or garbled line is an error,
//! never a half-read event. Strings the callback takes are checked to be UTF-8.

use std::borrow::Cow;

/// Why a text is not a JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Nesting deeper than this is refused (skipping never recurses, but the limit keeps
/// pathological lines cheap).
const MAX_DEPTH: usize = 64;

/// What a caller does with each key and its value (it must consume or skip the value).
pub type OnField<'f, 'a> = dyn FnMut(&[u8], Value<'_, 'a>) -> Result<(), Malformed> + 'f;

/// A value at the reader's position, not yet consumed.
pub struct Value<'r, 'a> {
    reader: &'r mut Reader<'a>,
}

impl<'a> Value<'_, 'a> {
    /// The value as a string (`None` when it is another type, which is then skipped).
    #[inline]
    pub fn string(self) -> Result<Option<Cow<'a, str>>, Malformed> {
        if self.reader.peek() == Some(b'"') {
            self.reader.string().map(Some)
        } else {
            self.reader.skip_value().map(|()| None)
        }
    }

    /// The value as a number (`None` when it is another type).
    #[inline]
    pub fn number(self) -> Result<Option<f64>, Malformed> {
        match self.reader.peek() {
            Some(b'-' | b'0'..=b'9') => self.reader.number().map(Some),
            _ => self.reader.skip_value().map(|()| None),
        }
    }

    /// A string or a number, whichever the value is.
    pub fn string_or_number(self) -> Result<Option<Scalar<'a>>, Malformed> {
        match self.reader.peek() {
            Some(b'"') => self.reader.string().map(|s| Some(Scalar::String(s))),
            Some(b'-' | b'0'..=b'9') => self.reader.number().map(|n| Some(Scalar::Number(n))),
            _ => self.reader.skip_value().map(|()| None),
        }
    }

    /// The value as a boolean (`None` when it is another type).
    pub fn boolean(self) -> Result<Option<bool>, Malformed> {
        if self.reader.rest().starts_with(b"true") {
            self.reader.pos += 4;
            Ok(Some(true))
        } else if self.reader.rest().starts_with(b"false") {
            self.reader.pos += 5;
            Ok(Some(false))
        } else {
            self.reader.skip_value().map(|()| None)
        }
    }

    /// The value as an object, each of its keys handed to `on_field`; `false` when it is
    /// another type (then skipped).
    pub fn object(self, on_field: &mut OnField<'_, 'a>) -> Result<bool, Malformed> {
        if self.reader.peek() == Some(b'{') {
            self.reader.object(on_field).map(|()| true)
        } else {
            self.reader.skip_value().map(|()| false)
        }
    }

    /// Skips the value.
    #[inline]
    pub fn skip(self) -> Result<(), Malformed> {
        self.reader.skip_value()
    }
}

/// A string or a number.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar<'a> {
    String(Cow<'a, str>),
    Number(f64),
}

/// Reads the JSON object that is the whole of `text` (surrounding white space allowed), handing
/// each top-level key (raw bytes, escapes in keys decoded) and its value to `on_field`, which
/// must consume or skip the value.
pub fn read_object<'a>(text: &'a [u8], on_field: &mut OnField<'_, 'a>) -> Result<(), Malformed> {
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    reader.skip_white();
    if reader.peek() != Some(b'{') {
        return Err(Malformed);
    }
    reader.object(on_field)?;
    reader.skip_white();
    if reader.pos == text.len() {
        Ok(())
    } else {
        Err(Malformed)
    }
}

struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn rest(&self) -> &'a [u8] {
        &self.text[self.pos.min(self.text.len())..]
    }

    fn skip_white(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Malformed> {
        self.skip_white();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    fn object(&mut self, on_field: &mut OnField<'_, 'a>) -> Result<(), Malformed> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Malformed);
        }
        self.expect(b'{')?;
        self.skip_white();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_white();
            if self.peek() != Some(b'"') {
                return Err(Malformed);
            }
            let key = self.key()?;
            self.expect(b':')?;
            self.skip_white();
            let before = self.pos;
            on_field(&key, Value { reader: self })?;
            if self.pos == before {
                // The callback neither took nor skipped the value.
                self.skip_value()?;
            }
            self.skip_white();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// A key at the position (its opening quote), as bytes. Keys are only compared with the
    /// known ASCII names, so the common case (no escapes) is a plain scan with no UTF-8 check;
    /// a key with escapes is decoded like any string.
    #[inline]
    fn key(&mut self) -> Result<Cow<'a, [u8]>, Malformed> {
        let start = self.pos + 1;
        let mut end = start;
        loop {
            match self.text.get(end) {
                Some(b'"') => {
                    self.pos = end + 1;
                    return Ok(Cow::Borrowed(&self.text[start..end]));
                }
                Some(b'\\') => {
                    return match self.string()? {
                        Cow::Borrowed(text) => Ok(Cow::Borrowed(text.as_bytes())),
                        Cow::Owned(text) => Ok(Cow::Owned(text.into_bytes())),
                    };
                }
                Some(0x00..=0x1f) | None => return Err(Malformed),
                Some(_) => end += 1,
            }
        }
    }

    /// A string at the position (which is its opening quote): borrowed unless it has escapes.
    #[inline]
    fn string(&mut self) -> Result<Cow<'a, str>, Malformed> {
        let start = self.pos + 1;
        let body = &self.text[start.min(self.text.len())..];
        let end = memchr::memchr2(b'"', b'\\', body).ok_or(Malformed)?;
        if body[end] == b'"' {
            let raw = &body[..end];
            if raw.iter().any(|b| *b < 0x20) {
                return Err(Malformed);
            }
            self.pos = start + end + 1;
            return std::str::from_utf8(raw)
                .map(Cow::Borrowed)
                .map_err(|_| Malformed);
        }
        // Escapes: decode into a new string.
        let mut decoded: Vec<u8> = Vec::with_capacity(body.len().min(256));
        let mut i = 0;
        loop {
            let byte = *body.get(i).ok_or(Malformed)?;
            match byte {
                b'"' => break,
                b'\\' => {
                    let escape = *body.get(i + 1).ok_or(Malformed)?;
                    i += 2;
                    let ch = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = hex4(body.get(i..i + 4).ok_or(Malformed)?)?;
                            i += 4;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                // A surrogate pair: the low half must follow.
                                if body.get(i..i + 2) != Some(b"\\u") {
                                    return Err(Malformed);
                                }
                                let low = hex4(body.get(i + 2..i + 6).ok_or(Malformed)?)?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(Malformed);
                                }
                                i += 6;
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            char::from_u32(code).ok_or(Malformed)?
                        }
                        _ => return Err(Malformed),
                    };
                    let mut utf8 = [0u8; 4];
                    decoded.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                }
                0x00..=0x1f => return Err(Malformed),
                other => {
                    decoded.push(other);
                    i += 1;
                }
            }
        }
        self.pos = start + i + 1;
        String::from_utf8(decoded)
            .map(Cow::Owned)
            .map_err(|_| Malformed)
    }

    fn number(&mut self) -> Result<f64, Malformed> {
        let start = self.pos;
        let length = self
            .rest()
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        let token = &self.text[start..start + length];
        self.pos += length;
        // Integers, the common case, without the general float parser.
        if !token.is_empty() && token.len() <= 15 && token.iter().all(u8::is_ascii_digit) {
            if token.len() > 1 && token[0] == b'0' {
                return Err(Malformed);
            }
            return Ok(token.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64);
        }
        if !valid_number(token) {
            return Err(Malformed);
        }
        std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or(Malformed)
    }

    /// Skips one value of any type, checking its shape; never recursive.
    fn skip_value(&mut self) -> Result<(), Malformed> {
        self.skip_white();
        match self.peek().ok_or(Malformed)? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                // Containers: count depth; strings inside are skipped whole so that brackets in
                // them do not count. (Shape inside containers is checked loosely: balanced
                // brackets and well-formed strings.)
                let mut stack: Vec<u8> = Vec::new();
                loop {
                    let byte = self.peek().ok_or(Malformed)?;
                    match byte {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => {
                            if stack.len() + self.depth >= MAX_DEPTH {
                                return Err(Malformed);
                            }
                            stack.push(if byte == b'{' { b'}' } else { b']' });
                        }
                        b'}' | b']' => {
                            if stack.pop() != Some(byte) {
                                return Err(Malformed);
                            }
                            if stack.is_empty() {
                                self.pos += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => Err(Malformed),
        }
    }

    fn skip_string(&mut self) -> Result<(), Malformed> {
        let mut i = self.pos + 1;
        loop {
            let at = memchr::memchr2(b'"', b'\\', self.text.get(i..).ok_or(Malformed)?)
                .ok_or(Malformed)?;
            i += at;
            if self.text[i] == b'"' {
                self.pos = i + 1;
                return Ok(());
            }
            i += 2; // a backslash and the character it escapes
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if self.rest().starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

fn hex4(digits: &[u8]) -> Result<u32, Malformed> {
    digits.iter().try_fold(0u32, |n, d| {
        Ok(n * 16 + (*d as char).to_digit(16).ok_or(Malformed)?)
    })
}

/// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn valid_number(token: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while token.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if token.get(i) == Some(&b'-') {
        i += 1;
    }
    if token.get(i) == Some(&b'0') {
        i += 1;
    } else if !digits(&mut i) {
        return false;
    }
    if token.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(token.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(token.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == token.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every top-level string and number, read with this reader.
    fn scalars(text: &[u8]) -> Result<Vec<(String, Option<Scalar<'_>>)>, Malformed> {
        let mut found = Vec::new();
        read_object(text, &mut |key, value| {
            found.push((
                String::from_utf8_lossy(key).into_owned(),
                value.string_or_number()?,
            ));
            Ok(())
        })?;
        Ok(found)
    }

    #[test]
    fn reads_strings_borrowed_unless_escaped_and_numbers() {
        let text = br#" {"a":"plain","b":"tab\tquote\"slash\/u\u00e9\ud83d\ude00","c":-12.5e1,"d":42,"e":true,"f":null,"g":{"x":[1,{"y":"}"}]}} "#;
        let found = scalars(text).unwrap();
        assert_eq!(
            found[0],
            ("a".into(), Some(Scalar::String(Cow::Borrowed("plain"))))
        );
        assert!(matches!(
            &found[0].1,
            Some(Scalar::String(Cow::Borrowed(_)))
        ));
        assert_eq!(
            found[1].1,
            Some(Scalar::String(Cow::Owned("tab\tquote\"slash/ué😀".into())))
        );
        assert_eq!(found[2].1, Some(Scalar::Number(-125.0)));
        assert_eq!(found[3].1, Some(Scalar::Number(42.0)));
        assert_eq!(found[4].1, None);
        assert_eq!(found.len(), 7);
    }

    #[test]
    fn nested_objects_are_read_on_request() {
        let text = br#"{"details":{"reason":"invalid_password","n":3},"other":{"reason":"no"}}"#;
        let mut reason = None;
        read_object(text, &mut |key, value| {
            if key == b"details" {
                value.object(&mut |key, value| {
                    if key == b"reason" {
                        reason = value.string()?.map(Cow::into_owned);
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(reason.as_deref(), Some("invalid_password"));
    }

    #[test]
    fn malformed_texts_are_refused() {
        for text in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":1} x",
            b"{\"a\":\"unterminated}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":tru}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"line\nbreak\"}",
            b"{\"a\":{\"b\":[1,2}}",
            b"{\"a\":+1}",
            b"{\"a\":NaN}",
        ] {
            assert_eq!(
                scalars(text).map(|_| ()),
                Err(Malformed),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(scalars(deep.as_bytes()).map(|_| ()), Err(Malformed));
    }

    /// JSON values built by proptest, rendered by serde_json.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e12f64..1e12).prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever serde_json writes, this reader reads back the same top-level strings and
        /// numbers.
        #[test]
        fn agrees_with_serde_json(map in prop::collection::btree_map(any::<String>(), json_value(), 0..8)) {
            let object = serde_json::Value::Object(map.into_iter().collect());
            let text = serde_json::to_vec(&object).unwrap();
            let found = scalars(&text).expect("serde's output is well-formed");
            let serde_json::Value::Object(fields) = &object else { unreachable!() };
            prop_assert_eq!(found.len(), fields.len());
            for (key, value) in found {
                match (&fields[&key], value) {
                    (serde_json::Value::String(expected), Some(Scalar::String(got))) => prop_assert_eq!(expected.as_str(), got.as_ref()),
                    (serde_json::Value::Number(expected), Some(Scalar::Number(got))) => prop_assert_eq!(expected.as_f64().unwrap(), got),
                    (other, None) => prop_assert!(!other.is_string() && !other.is_number()),
                    (expected, got) => prop_assert!(false, "{:?} vs {:?}", expected, got),
                }
            }
        }

        /// Any bytes: an answer, never a panic.
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = scalars(&bytes);
        }

        /// Cut anywhere, a well-formed object is refused, never half read.
        #[test]
        fn truncation_is_refused(map in prop::collection::btree_map("[a-z]{1,5}", json_value(), 1..5), cut in 0.0f64..1.0) {
            let text = serde_json::to_vec(&serde_json::Value::Object(map.into_iter().collect())).unwrap();
            let at = ((text.len() as f64) * cut) as usize;
            prop_assume!(at < text.len());
            prop_assert_eq!(scalars(&text[..at]).map(|_| ()), Err(Malformed));
        }
    }
}
