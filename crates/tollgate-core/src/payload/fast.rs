//! A strict reader for the common shape of a JWT payload: one JSON object of
//! ASCII strings without escapes, integers, literals, arrays and nested
//! objects. It reads registered claims straight out of the bytes.
//!
//! It never decides alone that a payload is bad: anything outside that
//! subset (an escape, a non-ASCII byte, a fraction, a wrong type for a
//! registered claim, a duplicate, any syntax error) makes it give up, and the
//! serde reader, which owns every error, reads the payload instead. When it
//! does answer, the answer equals the serde reader's; a differential test
//! holds it to that.

use std::borrow::Cow;

use super::{Payload, Reg, Registered, StringOrList};

/// Deepest nesting skipped before giving up.
const MAX_DEPTH: usize = 32;

enum Value<'p> {
    Str(&'p str),
    Int(i64),
    Strs(Vec<&'p str>),
    Other,
}

struct Reader<'p> {
    b: &'p [u8],
    i: usize,
}

impl<'p> Reader<'p> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A string of printable ASCII without escapes; `None` otherwise.
    fn string(&mut self) -> Option<&'p str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                0x20..=0x7e if self.b[self.i] != b'\\' => self.i += 1,
                _ => return None,
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(s)
    }

    /// A JSON integer that fits i64; `None` for invalid syntax and for any
    /// other number (left to the serde reader).
    fn number(&mut self) -> Option<Value<'p>> {
        let start = self.i;
        self.eat(b'-');
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = self.b.get(self.i) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let mut integer = true;
        if self.eat(b'.').is_some() {
            integer = false;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            integer = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.digits()?;
        }
        // Only an integer that fits i64 is this reader's: a fraction, an
        // exponent or a longer integer is the serde reader's to judge, since
        // it refuses what does not fit an f64 (`1E400`, 400 digits), which
        // this reader cannot tell from a valid number (both found by the
        // `payload` fuzz target).
        if !integer {
            return None;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        text.parse().ok().map(Value::Int)
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    fn value(&mut self, depth: usize) -> Option<Value<'p>> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match *self.b.get(self.i)? {
            b'"' => Value::Str(self.string()?),
            b'-' | b'0'..=b'9' => self.number()?,
            b't' => self.literal(b"true").map(|()| Value::Other)?,
            b'f' => self.literal(b"false").map(|()| Value::Other)?,
            b'n' => self.literal(b"null").map(|()| Value::Other)?,
            b'[' => {
                self.i += 1;
                self.ws();
                let mut strs = Some(Vec::new());
                if self.eat(b']').is_none() {
                    loop {
                        match self.value(depth + 1)? {
                            Value::Str(s) => {
                                if let Some(v) = &mut strs {
                                    v.push(s)
                                }
                            }
                            _ => strs = None,
                        }
                        self.ws();
                        if self.eat(b',').is_some() {
                            self.ws();
                            continue;
                        }
                        self.eat(b']')?;
                        break;
                    }
                }
                strs.map_or(Value::Other, Value::Strs)
            }
            b'{' => {
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_none() {
                    loop {
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                        self.value(depth + 1)?;
                        self.ws();
                        if self.eat(b',').is_some() {
                            self.ws();
                            continue;
                        }
                        self.eat(b'}')?;
                        break;
                    }
                }
                Value::Other
            }
            _ => return None,
        })
    }
}

/// Stores one registered claim as the serde reader would; `None` when the
/// value is one the serde reader must judge.
fn store<'p>(
    reg: &mut Registered,
    iss: &mut Option<Result<Cow<'p, str>, ()>>,
    which: Reg,
    value: Value<'p>,
) -> Option<()> {
    let list = |v: Value<'p>| match v {
        Value::Str(s) => Some(StringOrList::One(s.to_owned())),
        Value::Strs(v) => Some(StringOrList::Many(
            v.into_iter().map(str::to_owned).collect(),
        )),
        _ => None,
    };
    match (which, value) {
        (Reg::Iss, Value::Str(s)) => *iss = Some(Ok(Cow::Borrowed(s))),
        (Reg::Iss, _) => *iss = Some(Err(())),
        (Reg::Sub, Value::Str(s)) => reg.sub = Some(s.to_owned()),
        (Reg::Jti, Value::Str(s)) => reg.jti = Some(s.to_owned()),
        (Reg::ClientId, Value::Str(s)) => reg.client_id = Some(s.to_owned()),
        (Reg::Sid, Value::Str(s)) => reg.sid = Some(s.to_owned()),
        (Reg::SidExp, Value::Int(t)) => reg.sid_exp = Some(t),
        (Reg::Aud, v) => reg.aud = Some(list(v)?),
        (Reg::Exp, Value::Int(t)) => {
            reg.exp = t;
            reg.has_exp = true;
        }
        (Reg::Nbf, Value::Int(t)) => reg.nbf = Some(t),
        (Reg::Iat, Value::Int(t)) => reg.iat = Some(t),
        (Reg::Scope | Reg::Scp, v) => super::add_scopes(reg, list(v)?).ok()?,
        _ => return None,
    }
    Some(())
}

/// Reads `bytes` if it is in the fast subset; `None` hands it to serde.
pub(crate) fn read(bytes: &[u8], keep_names: bool) -> Option<Payload<'_>> {
    let mut r = Reader { b: bytes, i: 0 };
    let mut reg = Registered::default();
    let mut iss = None;
    let mut members = Vec::new();
    let mut seen = 0u16;
    r.ws();
    r.eat(b'{')?;
    r.ws();
    if r.eat(b'}').is_none() {
        loop {
            let name = r.string()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            let value = r.value(1)?;
            if let Some(which) = Reg::of(name) {
                if seen & which as u16 != 0 {
                    return None;
                }
                seen |= which as u16;
                store(&mut reg, &mut iss, which, value)?;
            }
            if keep_names {
                members.push((Cow::Borrowed(name), None));
            }
            r.ws();
            if r.eat(b',').is_some() {
                r.ws();
                continue;
            }
            r.eat(b'}')?;
            break;
        }
    }
    r.ws();
    (r.i == bytes.len()).then_some(Payload { iss, reg, members })
}

/// The differential check: when this reader answers for `bytes`, the serde
/// reader accepts them too and reads the same `iss`, registered claims and
/// member names. Panics on a disagreement; returns whether this reader
/// answered. Used by the tests and by the `payload` fuzz target.
#[cfg(any(test, fuzzing))]
pub(crate) fn agrees_with_serde(bytes: &[u8]) -> bool {
    let Some(fast) = read(bytes, true) else {
        return false;
    };
    let text = String::from_utf8_lossy(bytes);
    let slow = Payload::parse_serde(bytes, false, true)
        .unwrap_or_else(|e| panic!("fast reader accepted what serde refuses ({e}): {text}"));
    assert_eq!(fast.iss, slow.iss, "{text}");
    assert_eq!(fast.reg, slow.reg, "{text}");
    let names = |p: &Payload<'_>| {
        p.members
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&fast), names(&slow), "{text}");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const KEYS: &[&str] = &[
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "scope",
        "scp",
        "sid",
        "sid_exp",
        "tier",
        "x",
        "n\\u0061me",
        "é",
    ];
    const SCALARS: &[&str] = &[
        "\"a\"",
        "\"https://issuer.example\"",
        "\"read write\"",
        "\"\"",
        "\" a  b \"",
        "\"esc\\\"aped\"",
        "\"caf\u{e9}\"",
        "\"\\u00e9\"",
        "0",
        "-0",
        "7",
        "1700000000",
        "-12",
        "10.5",
        "1e3",
        "1E+2",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "true",
        "false",
        "null",
        "01",
        "-",
        "1.",
        ".5",
        "tru",
        "\"unterminated",
        "\"tab\there\"",
    ];
    const WS: &[&str] = &["", " ", "\n", "\t", "\r\n ", "\u{a0}"];

    fn value(rng: &mut Rng, depth: usize) -> String {
        match rng.below(if depth > 3 { 1 } else { 4 }) {
            0 => rng.pick(SCALARS).to_owned(),
            1 => {
                let n = rng.below(4);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        if rng.below(3) == 0 {
                            value(rng, depth + 1)
                        } else {
                            rng.pick(&SCALARS[..5]).to_owned()
                        }
                    })
                    .collect();
                format!("[{}]", items.join(rng.pick(&[",", ", ", " ,", ",,"])))
            }
            2 => object(rng, depth + 1),
            _ => rng.pick(&SCALARS[..5]).to_owned(),
        }
    }

    fn object(rng: &mut Rng, depth: usize) -> String {
        let n = rng.below(7);
        let members: Vec<String> = (0..n)
            .map(|_| {
                let ws = rng.pick(WS);
                format!(
                    "{ws}\"{}\"{ws}:{}{}",
                    rng.pick(KEYS),
                    rng.pick(WS),
                    value(rng, depth)
                )
            })
            .collect();
        format!(
            "{}{{{}}}{}",
            rng.pick(WS),
            members.join(","),
            rng.pick(&WS[..3])
        )
    }

    fn check(bytes: &[u8]) -> bool {
        agrees_with_serde(bytes)
    }

    #[test]
    fn agrees_with_serde_whenever_it_answers() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut answered = 0;
        for _ in 0..50_000 {
            let mut bytes = object(&mut rng, 0).into_bytes();
            // Half the time, damage a byte or two as well.
            if rng.below(2) == 0 && !bytes.is_empty() {
                for _ in 0..1 + rng.below(2) {
                    let i = rng.below(bytes.len());
                    bytes[i] = b"{}[]\",:0-e. \\x"[rng.below(14)];
                }
            }
            answered += usize::from(check(&bytes));
        }
        assert!(
            answered > 2_000,
            "the fast path answered only {answered} times"
        );
    }

    #[test]
    fn answers_for_the_usual_token() {
        let p = br#"{"iss":"https://issuer.example","sub":"user-1","aud":["api","other"],"exp":1700000000,"iat":1699990000,"jti":"c6b0","scope":"read write","scp":["admin"],"tier":{"a":[1,2,{"b":null}]}}"#;
        assert!(check(p));
        // Shapes it leaves to serde.
        for p in [
            &br#"{"exp":1.5}"#[..],
            br#"{"sub":"\u0041"}"#,
            br#"{"exp":"1"}"#,
            br#"{"a":1,}"#,
            b"[]",
            br#"{"iss":"a","iss":"b"}"#,
            // Found by the `payload` fuzz target: an exponent past f64's
            // range, which serde refuses.
            b"{\"iss\":6666660E66666633\t\t}",
            br#"{"x":1e400}"#,
            format!("{{\"iss\":{}}}", "1".repeat(400)).as_bytes(),
        ] {
            assert!(read(p, true).is_none(), "{}", String::from_utf8_lossy(p));
        }
    }
}
