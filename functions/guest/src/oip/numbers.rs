//! The fast path for JSON `data`: arrays of numbers, decoded without serde.
//!
//! Through serde_json, decoding the 100 numbers of the seed MLP's input took about a fifth of
//! the whole in-process invocation (profile of `cargo bench -p maas-runtime --bench fastpath`):
//! its parser goes digit by digit with overflow checks, then rounds exactly with 128-bit
//! arithmetic that wasm32 emulates in software. Here one pass checks the JSON number grammar and
//! gathers the digits, eight at a time, without overflow checks; then
//!
//! - integers of up to 19 digits convert directly;
//! - a float whose digits and power of ten are exact in an `f64` takes one multiplication or
//!   division (Clinger's fast path);
//! - `FP32` and `FP16` elements with more digits (Python's `json.dumps` writes 17) round an
//!   approximation, unless it lies too near a midpoint between two `f32`s ([`Number::to_f32`]);
//! - the rest go to the standard library's parser.
//!
//! The result is bit for bit what the serde path ([`super::request`]'s `Decoder`) produces,
//! which the tests check on random and edge-case numbers. Anything else (booleans, `null`,
//! strings, objects, malformed JSON, a count that does not match the shape, an element out of
//! range, nesting deeper than 100 arrays, where serde_json stops at 128) returns `None`, and the
//! serde path decodes the data again, to give the same answer or the same error.

use crate::Datatype;
use crate::tensor::{Element, F16};

/// Deeper arrays go to the serde path (which refuses them from 128 on).
const MAX_DEPTH: usize = 100;

/// One number, scanned by the JSON grammar, with its decimal digits gathered on the way.
struct Number<'t> {
    /// Its text, for the numbers the fast conversion below does not cover.
    text: &'t str,
    negative: bool,
    /// Every digit, as an integer (`1.25e3` gives 125), when there are at most 19 of them.
    digits: Option<u64>,
    /// The power of ten `digits` is scaled by (`1.25e3` gives 1); saturated.
    exponent: i32,
    /// No fraction and no exponent.
    integer: bool,
}

/// `10^0` to `10^22`: the powers of ten an `f64` holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

impl Number<'_> {
    /// The nearest `f64`. When the digits and the power of ten are both exact in an `f64`, one
    /// multiplication or division rounds correctly (Clinger's fast path); otherwise the standard
    /// library's parser decides.
    fn to_f64(&self) -> Option<f64> {
        let magnitude = match self.digits {
            Some(digits) if digits <= 1 << 53 && self.exponent.unsigned_abs() <= 22 => {
                let power = POWERS_OF_TEN[self.exponent.unsigned_abs() as usize];
                if self.exponent < 0 { digits as f64 / power } else { digits as f64 * power }
            }
            _ => return self.text.parse::<f64>().ok(),
        };
        Some(if self.negative { -magnitude } else { magnitude })
    }

    /// `self.to_f64()? as f32`, most of the time without computing the nearest `f64` exactly.
    ///
    /// For up to 19 digits and a power of ten up to 22, `digits as f64` and one multiplication
    /// or division come within a few `f64` units in the last place of the exact value. That
    /// rounds to the same `f32` as the nearest `f64` does unless it lies within those few units
    /// of a midpoint between two `f32`s, which the 29 bits an `f32` drops tell; then (about one
    /// number in ten million) and outside the normal `f32` range, the exact path decides.
    fn to_f32(&self) -> Option<f32> {
        const DROPPED: u32 = 52 - 23;
        const MARGIN: i64 = 16;
        if let Some(digits) = self.digits
            && !self.integer
            && digits > 1 << 53
            && self.exponent.unsigned_abs() <= 22
        {
            let power = POWERS_OF_TEN[self.exponent.unsigned_abs() as usize];
            let near = if self.exponent < 0 { digits as f64 / power } else { digits as f64 * power };
            let dropped = (near.to_bits() & ((1 << DROPPED) - 1)) as i64;
            let single = near as f32;
            if (dropped - (1 << (DROPPED - 1))).abs() > MARGIN && single.is_normal() && single < f32::MAX {
                return Some(if self.negative { -single } else { single });
            }
        }
        float(self).map(|value| value as f32)
    }

    /// An integer literal as `T` (through `u64` or `i64`), if it is one and fits; fractions,
    /// exponents and values out of range go to the serde path.
    fn to_integer<T: TryFrom<u64> + TryFrom<i64>>(&self) -> Option<T> {
        let digits = self.digits.filter(|_| self.integer)?;
        if self.negative {
            let negated = 0i64.checked_sub_unsigned(digits)?;
            T::try_from(negated).ok()
        } else {
            T::try_from(digits).ok()
        }
    }
}

/// Decodes `text` (a JSON array of numbers, maybe nested) into `expected` little-endian
/// `datatype` elements, or `None` if the serde path must decide.
pub(super) fn decode(text: &str, datatype: Datatype, expected: u64) -> Option<Vec<u8>> {
    if datatype == Datatype::Bool {
        return None;
    }
    let mut out = Vec::with_capacity(super::request::data_capacity(text, datatype, expected));
    let mut scanner = Scanner { text, bytes: text.as_bytes(), at: 0 };
    let mut count = 0u64;
    let mut depth = 0usize;
    scanner.skip_whitespace();
    if scanner.next()? != b'[' {
        return None;
    }
    depth += 1;
    // After `[`: a value or `]`. After `,`: a value. After a value: `,` or `]`.
    let mut after_open = true;
    loop {
        scanner.skip_whitespace();
        match scanner.peek()? {
            b'[' => {
                scanner.at += 1;
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                after_open = true;
                continue;
            }
            b']' if after_open => {}
            b'-' | b'0'..=b'9' => {
                count += 1;
                if count > expected {
                    return None;
                }
                push(datatype, scanner.number()?, &mut out)?;
                scanner.skip_whitespace();
            }
            _ => return None,
        }
        // After a value (or an empty array's `[`): commas and closing brackets.
        loop {
            match scanner.next()? {
                b',' => break,
                b']' => {
                    depth -= 1;
                    if depth == 0 {
                        scanner.skip_whitespace();
                        return (scanner.at == scanner.bytes.len() && count == expected).then_some(out);
                    }
                    scanner.skip_whitespace();
                }
                _ => return None,
            }
        }
        after_open = false;
    }
}

/// Appends one element, converted exactly as the serde path converts it; `None` when that path
/// would refuse it or must see it (out of range, not an integer, beyond 64 bits, infinite).
fn push(datatype: Datatype, number: Number<'_>, out: &mut Vec<u8>) -> Option<()> {
    match datatype {
        Datatype::Bool => return None,
        Datatype::Uint8 => number.to_integer::<u8>()?.write_le(out),
        Datatype::Uint16 => number.to_integer::<u16>()?.write_le(out),
        Datatype::Uint32 => number.to_integer::<u32>()?.write_le(out),
        Datatype::Uint64 => number.to_integer::<u64>()?.write_le(out),
        Datatype::Int8 => number.to_integer::<i8>()?.write_le(out),
        Datatype::Int16 => number.to_integer::<i16>()?.write_le(out),
        Datatype::Int32 => number.to_integer::<i32>()?.write_le(out),
        Datatype::Int64 => number.to_integer::<i64>()?.write_le(out),
        Datatype::Fp16 => F16::from_f32(number.to_f32()?).write_le(out),
        Datatype::Fp32 => number.to_f32()?.write_le(out),
        Datatype::Fp64 => float(&number)?.write_le(out),
    }
    Some(())
}

/// A number as `f64`, as serde_json hands it to the `Decoder`: integer literals through `u64` or
/// `i64` (except `-0`, which it makes `-0.0`), others rounded to the nearest `f64`.
fn float(number: &Number<'_>) -> Option<f64> {
    let value = if number.integer && !(number.negative && number.digits == Some(0)) {
        if number.negative { number.to_integer::<i64>()? as f64 } else { number.to_integer::<u64>()? as f64 }
    } else {
        number.to_f64()?
    };
    // serde_json refuses numbers that overflow f64; let it say so.
    value.is_finite().then_some(value)
}

/// A cursor over `data`.
struct Scanner<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
}

impl<'t> Scanner<'t> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// One number by the JSON grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    /// The state lives in locals, not in `self`, so that the digit loops run in registers.
    fn number(&mut self) -> Option<Number<'t>> {
        let bytes = self.bytes;
        let start = self.at;
        let mut at = start;
        let negative = bytes.get(at) == Some(&b'-');
        at += usize::from(negative);
        let (mut value, mut seen) = (0u64, 0usize);
        match bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => (at, value, seen) = digits(bytes, at, value, seen),
            _ => return None,
        }
        let mut exponent = 0i32;
        let mut integer = true;
        if bytes.get(at) == Some(&b'.') {
            let before = seen;
            (at, value, seen) = digits(bytes, at + 1, value, seen);
            if seen == before {
                return None;
            }
            exponent = i32::try_from(seen - before).unwrap_or(i32::MAX).saturating_neg();
            integer = false;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            let sign = bytes.get(at).copied();
            at += usize::from(matches!(sign, Some(b'+' | b'-')));
            let (end, written, count) = digits(bytes, at, 0, 0);
            if count == 0 {
                return None;
            }
            at = end;
            let written = if count < 10 { written as i32 } else { i32::MAX };
            exponent = exponent.saturating_add(if sign == Some(b'-') { -written } else { written });
            integer = false;
        }
        self.at = at;
        Some(Number {
            // The grammar admits only ASCII, so these are character boundaries.
            text: self.text.get(start..at)?,
            negative,
            digits: (seen <= 19).then_some(value),
            exponent,
            integer,
        })
    }
}

/// Skips the run of digits at `at`, appending each to `value` while `seen` (digits so far) is
/// below 19, which always fit a `u64`. Returns where the run ends, `value` and `seen`.
#[inline(always)]
fn digits(bytes: &[u8], mut at: usize, mut value: u64, mut seen: usize) -> (usize, u64, usize) {
    // Eight digits at a time while they fit (`value` < 10^11 before, < 10^19 after).
    while seen + 8 <= 19
        && let Some(word) = bytes.get(at..at + 8).and_then(|chunk| chunk.try_into().ok()).map(u64::from_le_bytes)
        && all_digits(word)
    {
        value = value * 100_000_000 + eight_digits(word);
        seen += 8;
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        let digit = byte.wrapping_sub(b'0');
        if digit >= 10 {
            break;
        }
        // No checked arithmetic: on wasm32 the overflow check of a u64 multiplication calls a
        // 128-bit multiplication routine, once per digit.
        if seen < 19 {
            value = value * 10 + u64::from(digit);
        }
        seen += 1;
        at += 1;
    }
    (at, value, seen)
}

/// Whether all eight bytes of `word` are ASCII digits.
fn all_digits(word: u64) -> bool {
    const LOW: u64 = 0x0606_0606_0606_0606;
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    (word & HIGH) == ZEROS && (word.wrapping_add(LOW) & HIGH) == ZEROS
}

/// The value of eight ASCII digits, the first in the lowest byte (three multiplications
/// instead of eight; the technique of simdjson and fast_float).
fn eight_digits(word: u64) -> u64 {
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let mut value = word - 0x3030_3030_3030_3030;
    value = value.wrapping_mul(10).wrapping_add(value >> 8);
    value = ((value & MASK).wrapping_mul(MUL1).wrapping_add(((value >> 16) & MASK).wrapping_mul(MUL2))) >> 32;
    u64::from(value as u32)
}

#[cfg(test)]
mod tests {
    use super::decode;
    use crate::Datatype;
    use crate::oip::request::decode_with_serde;

    /// Checks that the fast path, when it answers, answers exactly what the serde path does,
    /// and returns whether it answered.
    fn agrees(text: &str, datatype: Datatype, expected: u64) -> bool {
        let fast = decode(text, datatype, expected);
        if let Some(bytes) = &fast {
            assert_eq!(Ok(bytes.clone()), decode_with_serde(text, datatype, expected), "{datatype} {text}");
        }
        fast.is_some()
    }

    /// A small deterministic generator (xorshift64*), so the test needs no dependency.
    struct Numbers(u64);

    impl Numbers {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn common_data_takes_the_fast_path_and_matches_serde() {
        let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
        for round in 0..200 {
            // f32 values as serde_json writes them (shortest round trip), f64 bit patterns
            // written with 17 digits, and integers, in flat and nested arrays.
            let f32s: Vec<f32> = (0..24).map(|_| f32::from_bits(numbers.next() as u32 & 0xbf7f_ffff)).collect();
            let f64s: Vec<f64> = (0..24)
                .map(|_| f64::from_bits(numbers.next() & 0xbfef_ffff_ffff_ffff))
                .filter(|v| v.is_finite())
                .collect();
            let ints: Vec<i64> = (0..24).map(|_| (numbers.next() as i64) >> (numbers.next() % 64)).collect();
            let flat = serde_json::to_string(&f32s).unwrap();
            let nested = serde_json::to_string(&f32s.chunks(6).collect::<Vec<_>>()).unwrap();
            let wide = format!("[{}]", f64s.iter().map(|v| format!("{v:.16e}")).collect::<Vec<_>>().join(", "));
            let integers = serde_json::to_string(&ints).unwrap();
            for (text, count) in [(&flat, 24), (&nested, 24), (&wide, f64s.len() as u64)] {
                for datatype in [Datatype::Fp16, Datatype::Fp32, Datatype::Fp64] {
                    assert!(agrees(text, datatype, count), "round {round}: {datatype} {text}");
                }
            }
            for datatype in [Datatype::Int64, Datatype::Fp32, Datatype::Fp64] {
                assert!(agrees(&integers, datatype, 24), "round {round}: {datatype} {integers}");
            }
            // Narrow integer types: the fast path may hand out-of-range values to serde.
            for datatype in [Datatype::Int8, Datatype::Uint8, Datatype::Int32, Datatype::Uint64] {
                agrees(&integers, datatype, 24);
            }
        }
    }

    /// The `f32` path rounds an approximate `f64`: numbers at, and a few `f64` units around,
    /// the midpoints between two `f32`s must still round as the nearest `f64` does.
    #[test]
    fn f32_rounding_matches_serde_near_midpoints() {
        let mut numbers = Numbers(0x2545_f491_4f6c_dd1d);
        for _ in 0..2000 {
            let low = f32::from_bits((numbers.next() as u32 % 0x7e00_0000) + 0x0080_0000);
            let midpoint = (f64::from(low) + f64::from(low.next_up())) / 2.0;
            let mut texts = Vec::new();
            for step in -3i64..=3 {
                let near = f64::from_bits(midpoint.to_bits().wrapping_add_signed(step));
                texts.push(format!("{near:e}"));
                texts.push(format!("{:e}", -near));
            }
            // Python's json.dumps of float32 values: the widened f64, with up to 17 digits.
            texts.push(serde_json::to_string(&f64::from(low)).unwrap());
            // 19 digits and a power of ten within 22.
            let digits = numbers.next() % 9_000_000_000_000_000_000 + 1_000_000_000_000_000_000;
            texts.push(format!("{digits}e-{}", numbers.next() % 23));
            texts.push(format!("-{digits}e{}", numbers.next() % 20));
            let text = format!("[{}]", texts.join(","));
            let count = texts.len() as u64;
            for datatype in [Datatype::Fp16, Datatype::Fp32, Datatype::Fp64] {
                assert!(agrees(&text, datatype, count), "{datatype} {text}");
            }
        }
    }

    #[test]
    fn eight_digits_at_once() {
        assert!(super::all_digits(u64::from_le_bytes(*b"01234567")));
        assert!(!super::all_digits(u64::from_le_bytes(*b"0123456.")));
        assert!(!super::all_digits(u64::from_le_bytes(*b":1234567")));
        assert_eq!(super::eight_digits(u64::from_le_bytes(*b"12345678")), 12_345_678);
        assert_eq!(super::eight_digits(u64::from_le_bytes(*b"00000009")), 9);
        assert_eq!(super::eight_digits(u64::from_le_bytes(*b"99999999")), 99_999_999);
    }

    #[test]
    fn edge_cases_match_serde() {
        let fast = [
            ("[]", Datatype::Fp32, 0),
            ("[[], []]", Datatype::Fp32, 0),
            (" [ 1 , -2 ,\n3.5e2\t] ", Datatype::Fp32, 3),
            ("[-0, -0.0, 0e0, 1E+2, 1e-2]", Datatype::Fp64, 5),
            ("[9999999999999999999, -9223372036854775808]", Datatype::Fp64, 2),
            ("[9999999999999999999]", Datatype::Uint64, 1),
            ("[0.1234567890123456789, 1234567890123456789e-300, 0.12345678901234567890123]", Datatype::Fp64, 3),
            ("[-128, 127]", Datatype::Int8, 2),
            ("[65504, 65520, 1e-8]", Datatype::Fp16, 3),
            ("[3.4028235e38, 1e-50]", Datatype::Fp32, 2),
        ];
        for (text, datatype, count) in fast {
            assert!(agrees(text, datatype, count), "{datatype} {text} should take the fast path");
        }
        let deep = format!("{}1{}", "[".repeat(101), "]".repeat(101));
        let slow = [
            ("[true]", Datatype::Bool, 1),
            ("[1, 2]", Datatype::Fp32, 3),
            ("[1, 2, 3]", Datatype::Fp32, 2),
            ("[1,]", Datatype::Fp32, 1),
            ("[,1]", Datatype::Fp32, 1),
            ("[1 2]", Datatype::Fp32, 2),
            ("[01]", Datatype::Fp32, 1),
            ("[+1]", Datatype::Fp32, 1),
            ("[1.]", Datatype::Fp32, 1),
            ("[.5]", Datatype::Fp32, 1),
            ("[1e]", Datatype::Fp32, 1),
            ("[-]", Datatype::Fp32, 1),
            ("[1e400]", Datatype::Fp64, 1),
            ("[NaN]", Datatype::Fp32, 1),
            ("[null]", Datatype::Fp32, 1),
            ("[\"1\"]", Datatype::Fp32, 1),
            ("[{}]", Datatype::Fp32, 1),
            ("[1]]", Datatype::Fp32, 1),
            ("[[1]", Datatype::Fp32, 1),
            ("[1] x", Datatype::Fp32, 1),
            ("1", Datatype::Fp32, 1),
            ("[1.5]", Datatype::Int32, 1),
            ("[1e2]", Datatype::Int32, 1),
            ("[256]", Datatype::Uint8, 1),
            ("[-1]", Datatype::Uint64, 1),
            // Integers of more than 19 digits: serde_json's parser takes them.
            ("[18446744073709551615]", Datatype::Uint64, 1),
            ("[18446744073709551616]", Datatype::Fp64, 1),
            (deep.as_str(), Datatype::Fp32, 1),
        ];
        for (text, datatype, count) in slow {
            assert!(!agrees(text, datatype, count), "{datatype} {text} should go to the serde path");
        }
    }
}
