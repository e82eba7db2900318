//! The direct reader: a page of the common shape read straight from its bytes along the trie,
//! without serde's visitor calls per key and value.
//!
//! It reads what almost every page is: objects whose keys have no escapes, strings without
//! escapes, numbers, booleans and nulls, each where the schema expects it. Anything else (an
//! escape, a value of a shape the schema does not expect there, a number beyond 64 bits, JSON
//! it is not sure of) makes it give up with [`Bail`]; the page's rows are then rolled back and
//! the serde walk reads the page, so every page gives the rows and `_extra` it gave before.
//! Hand-written because no JSON crate walks a schema's trie: the serde walk over serde_json's
//! tokenizer spent about two thirds of a page's time in the visitor calls around each key.
//!
//! Numbers come out as serde_json gives them (`-0` a float, integers beyond i64 as u64), and
//! floats correctly rounded: short decimals by one exact division, others by the standard
//! library's parser.

use serde_json::{Map, Value};

use super::RecordContext;
use super::row::RowState;
use super::trie::{Node, Trie, join_path, same_key};

/// The direct reader does not take this page: the serde walk reads it.
#[derive(Debug)]
pub(super) struct Bail;

type Read<T> = Result<T, Bail>;

/// Nesting deeper than this is left to serde (which has its own limit).
const MAX_DEPTH: usize = 100;

/// A cursor over a page's text (valid UTF-8, checked by the caller).
pub(super) struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    /// Reads a page object: its records into `state`, its other keys into the returned map
    /// (`None` when the records key is absent, as the serde walk does).
    pub(super) fn page(
        &mut self,
        trie: &Trie,
        state: &mut RowState,
        ctx: &RecordContext<'_>,
        records_key: &str,
    ) -> Read<Option<Map<String, Value>>> {
        let mut meta = Map::new();
        let mut found = false;
        if self.open(b'{', b'}')? {
            loop {
                let key = self.key()?;
                if key == records_key && !found {
                    found = true;
                    self.records(trie, state, ctx)?;
                } else {
                    let raw = self.raw_value(0)?;
                    let value: Value = serde_json::from_str(raw).map_err(|_| Bail)?;
                    meta.insert(key.to_string(), value);
                }
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        self.skip_whitespace();
        if self.at != self.bytes.len() {
            return Err(Bail);
        }
        Ok(found.then_some(meta))
    }

    /// The records array (null counts as empty): each record is a row.
    fn records(&mut self, trie: &Trie, state: &mut RowState, ctx: &RecordContext<'_>) -> Read<()> {
        if self.peek() == Some(b'n') {
            return self.literal(b"null");
        }
        if !self.open(b'[', b']')? {
            return Ok(());
        }
        loop {
            state.begin_row();
            self.object(trie, state, 0)?;
            state.end_row(ctx);
            if !self.more(b']')? {
                return Ok(());
            }
        }
    }

    /// An object at a known path: each key along the trie into its column, a nested object,
    /// or `_extra`.
    fn object(&mut self, node: &Trie, state: &mut RowState, depth: usize) -> Read<()> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        if !self.open(b'{', b'}')? {
            return Ok(());
        }
        let mut previous = node.order_base;
        loop {
            let found = match self.predicted_key(node, &mut previous, &state.next_key) {
                Some(child) => Some(child),
                None => {
                    let key = self.key()?;
                    let found = node.lookup(key, &mut previous, &mut state.next_key);
                    if found.is_none() {
                        let raw = self.raw_value(depth)?;
                        let path = join_path(&node.path, key);
                        state.keep_extra(path, raw.to_string(), "not in the schema");
                    }
                    found
                }
            };
            match found {
                Some(Node::Column(c)) => self.column_value(*c, state)?,
                Some(Node::Object(child)) => match self.peek() {
                    Some(b'{') => self.object(child, state, depth + 1)?,
                    Some(b'n') => self.literal(b"null")?,
                    _ => return Err(Bail),
                },
                None => {}
            }
            if !self.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// The key the trie expects next (the one that followed the key in slot `previous` last
    /// time), when the text there is exactly that key and its colon: its child, the cursor
    /// after the colon and `previous` moved to its slot. A page's records share their key
    /// order, so this is the common case, and it costs one comparison instead of a scan and a
    /// lookup.
    #[inline]
    fn predicted_key<'t>(
        &mut self,
        node: &'t Trie,
        previous: &mut usize,
        next_key: &[u32],
    ) -> Option<&'t Node> {
        let hint = next_key[*previous] as usize;
        let (expected, child) = node.children.get(hint)?;
        let expected = expected.as_bytes();
        self.skip_whitespace();
        let start = self.at + 1;
        let end = start + expected.len();
        let text = self.bytes.get(self.at..end + 1)?;
        if text[0] != b'"'
            || text[text.len() - 1] != b'"'
            || !same_key(&self.bytes[start..end], expected)
        {
            return None;
        }
        self.at = end + 1;
        if self.peek() != Some(b':') {
            // Not a key after all (malformed): read again the slow way, which gives up.
            self.at = start - 1;
            return None;
        }
        self.at += 1;
        *previous = node.order_base + 1 + hint;
        Some(child)
    }

    /// A value that goes to column `c`.
    fn column_value(&mut self, c: usize, state: &mut RowState) -> Read<()> {
        if state.columns[c].json {
            let raw = self.raw_value(0)?;
            state.put_json_text(c, raw);
            return Ok(());
        }
        match self.peek() {
            Some(b'"') => {
                let text = self.string()?;
                state.put_str(c, text);
            }
            Some(b't') => {
                self.literal(b"true")?;
                state.put_bool(c, true);
            }
            Some(b'f') => {
                self.literal(b"false")?;
                state.put_bool(c, false);
            }
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => {
                let (text, integer) = self.number()?;
                put_number(state, c, text, integer)?;
            }
            // An object or array where a value goes: serde's walk keeps it as written.
            _ => return Err(Bail),
        }
        Ok(())
    }

    /// The raw text of any value (an unknown key's, a JSON-text column's), checked as JSON.
    fn raw_value(&mut self, depth: usize) -> Read<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        self.skip_value(depth)?;
        self.text.get(start..self.at).ok_or(Bail)
    }

    fn skip_value(&mut self, depth: usize) -> Read<()> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            Some(b'{') => {
                let mut more = self.open(b'{', b'}')?;
                while more {
                    self.key()?;
                    self.skip_value(depth + 1)?;
                    more = self.more(b'}')?;
                }
                Ok(())
            }
            Some(b'[') => {
                let mut more = self.open(b'[', b']')?;
                while more {
                    self.skip_value(depth + 1)?;
                    more = self.more(b']')?;
                }
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    /// An object key and its colon.
    fn key(&mut self) -> Read<&'a str> {
        if self.peek() != Some(b'"') {
            return Err(Bail);
        }
        let key = self.string()?;
        self.consume(b':')?;
        Ok(key)
    }

    /// A string without escapes (the cursor on its opening quote).
    fn string(&mut self) -> Read<&'a str> {
        let start = self.at + 1;
        let end = start + special_byte(&self.bytes[start.min(self.bytes.len())..]).ok_or(Bail)?;
        if self.bytes[end] != b'"' {
            // An escape or a control character: serde's walk decodes or rejects it.
            return Err(Bail);
        }
        self.at = end + 1;
        self.text.get(start..end).ok_or(Bail)
    }

    /// A number, checked against JSON's grammar: its text, and its value when it is an
    /// integer of at most 18 digits (read while scanning, so no second parse).
    fn number(&mut self) -> Read<(&'a str, Integer)> {
        let start = self.at;
        let negative = self.bytes.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let whole_start = self.at;
        let mut value: i64 = 0;
        match self.bytes.get(self.at) {
            // A leading zero followed by a digit is no number (serde_json stops there too,
            // before the value is used).
            Some(b'0') if self.bytes.get(self.at + 1).is_some_and(u8::is_ascii_digit) => {
                return Err(Bail);
            }
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                while let Some(&b) = self.bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
                    value = value.wrapping_mul(10).wrapping_add(i64::from(b - b'0'));
                    self.at += 1;
                }
            }
            _ => return Err(Bail),
        }
        let mut integer = match self.at - whole_start {
            // `-0` is the float -0.0, as serde_json reads it.
            _ if negative && value == 0 => Integer::No,
            0..=18 => Integer::Exact(if negative { -value } else { value }),
            _ => Integer::Long,
        };
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(Bail);
            }
            integer = Integer::No;
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(Bail);
            }
            integer = Integer::No;
        }
        let text = self.text.get(start..self.at).ok_or(Bail)?;
        Ok((text, integer))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    fn literal(&mut self, word: &[u8]) -> Read<()> {
        if self.bytes.get(self.at..self.at + word.len()) != Some(word) {
            return Err(Bail);
        }
        self.at += word.len();
        Ok(())
    }

    /// After a member: true on a comma (another follows), false on `close`.
    fn more(&mut self, close: u8) -> Read<bool> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(Bail),
        }
    }

    /// Opens an object or array: true when a member follows, false when it closes at once.
    fn open(&mut self, open: u8, close: u8) -> Read<bool> {
        self.consume(open)?;
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(false);
        }
        Ok(true)
    }

    fn consume(&mut self, byte: u8) -> Read<()> {
        if self.peek() != Some(byte) {
            return Err(Bail);
        }
        self.at += 1;
        Ok(())
    }

    /// The next byte that is not whitespace (the cursor moved onto it).
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }
}

/// Whether a number is an integer, and its value when it has at most 18 digits.
#[derive(Clone, Copy)]
enum Integer {
    Exact(i64),
    Long,
    No,
}

/// A number into column `c`, as serde's walk gives it: an integer as i64 (or u64 above
/// i64), anything else as a float; a number no 64-bit type holds goes to serde.
fn put_number(state: &mut RowState, c: usize, text: &str, integer: Integer) -> Read<()> {
    match integer {
        Integer::Exact(v) => {
            state.put_i64(c, v);
            return Ok(());
        }
        Integer::Long => {
            if let Ok(v) = text.parse::<i64>() {
                state.put_i64(c, v);
                return Ok(());
            }
            if let Ok(v) = text.parse::<u64>() {
                state.put_u64(c, v);
                return Ok(());
            }
            return Err(Bail);
        }
        Integer::No => {}
    }
    match short_decimal(text).map_or_else(|| text.parse::<f64>(), Ok) {
        Ok(v) if v.is_finite() => {
            state.put_f64(c, v);
            Ok(())
        }
        _ => Err(Bail),
    }
}

/// A decimal of at most 15 digits and no exponent (`3.81`), exactly as the standard parser
/// reads it: its digits as an integer (exact below 2^53) over a power of ten (exact up to
/// 10^22), one correctly rounded division. `None` for anything else.
fn short_decimal(text: &str) -> Option<f64> {
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.')?;
    if whole.len() + fraction.len() > 15 {
        return None;
    }
    let mut digits: u64 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        digits = digits * 10 + u64::from(b - b'0');
    }
    let value = digits as f64 / POWERS[fraction.len()];
    Some(if negative { -value } else { value })
}

/// The offset of the first `"`, `\` or control character in `bytes`, eight bytes at a time.
fn special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        let v = u64::from_le_bytes(word);
        let found = zero_byte(v ^ (ONES * u64::from(b'"')))
            | zero_byte(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::{short_decimal, special_byte};

    #[test]
    fn short_decimals_read_as_the_standard_parser_reads_them() {
        let cases = [
            "3.81",
            "0.1",
            "-0.0",
            "0.30000000000000004",
            "123456789.012345",
            "1.5e3",
            "12",
            "-7.25",
            "999999999999.999",
            "0.000000000000001",
            "4.35",
        ];
        for text in cases {
            let standard: f64 = text.parse().expect("a number");
            match short_decimal(text) {
                Some(v) => assert_eq!(v.to_bits(), standard.to_bits(), "{text}"),
                None => assert!(
                    text.contains('e') || !text.contains('.') || text.len() > 16,
                    "{text} should take the short path"
                ),
            }
        }
        // Every two-decimal value a metric takes, bit for bit.
        for hundredths in 0..100_000u32 {
            let text = format!("{}.{:02}", hundredths / 100, hundredths % 100);
            let standard: f64 = text.parse().expect("a number");
            assert_eq!(
                short_decimal(&text).map(f64::to_bits),
                Some(standard.to_bits()),
                "{text}"
            );
        }
    }

    #[test]
    fn special_byte_finds_the_first_quote_backslash_or_control_character() {
        assert_eq!(special_byte(b""), None);
        assert_eq!(special_byte(b"abc"), None);
        assert_eq!(special_byte(b"0123456789abcdef"), None);
        for at in 0..20 {
            for special in [b'"', b'\\', b'\n', 0x00, 0x1f] {
                let mut text = vec![b'a'; 20];
                text[at] = special;
                // A later special byte, and bytes above 0x7f, do not move the answer.
                text[19] = b'"';
                if at > 0 {
                    text[at - 1] = 0xc3;
                }
                assert_eq!(special_byte(&text), Some(at), "{special:#x} at {at}");
            }
        }
        assert_eq!(special_byte("é \u{7f}x\"".as_bytes()), Some(5));
    }
}
