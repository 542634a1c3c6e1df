//! Amounts of money as decimal text, rounded half away from zero to two decimals without going
//! through binary floating point (`2.675` is `2.68`, where `format!("{:.2}", 2.675)` gives `2.67`).

/// `text` as an amount with two decimals, or `None` when it is not a plain decimal number
/// (`-1.5`, `19,9` with a comma, `1e3` and `1.2.3` are not; a leading `+` is).
pub fn two_decimals(text: &str) -> Option<String> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Cents as a decimal string of digits, rounded on the third decimal.
    let mut cents: Vec<u8> = whole.bytes().chain(fraction.bytes().chain(std::iter::repeat(b'0')).take(2)).collect();
    if fraction.as_bytes().get(2).is_some_and(|&d| d >= b'5') {
        let mut i = cents.len();
        loop {
            if i == 0 {
                cents.insert(0, b'1');
                break;
            }
            i -= 1;
            if cents[i] == b'9' {
                cents[i] = b'0';
            } else {
                cents[i] += 1;
                break;
            }
        }
    }
    let cents = String::from_utf8(cents).ok()?;
    let cents = cents.trim_start_matches('0');
    let cents = format!("{cents:0>3}");
    let (units, hundredths) = cents.split_at(cents.len() - 2);
    let zero = units.bytes().all(|b| b == b'0') && hundredths == "00";
    Some(format!("{}{units}.{hundredths}", if negative && !zero { "-" } else { "" }))
}

#[cfg(test)]
mod tests {
    use super::two_decimals;

    #[test]
    fn rounds_half_away_from_zero_on_the_decimal_text() {
        for (text, want) in [
            ("2.675", "2.68"),
            ("1.005", "1.01"),
            ("1.004", "1.00"),
            ("19.9", "19.90"),
            ("10", "10.00"),
            ("0.995", "1.00"),
            ("99.999", "100.00"),
            (".5", "0.50"),
            ("007.10", "7.10"),
            ("-2.675", "-2.68"),
            ("-0.001", "0.00"),
            ("123456789012345678901.005", "123456789012345678901.01"),
        ] {
            assert_eq!(two_decimals(text).as_deref(), Some(want), "{text}");
        }
        for bad in ["", "-", ".", "1.2.3", "1e3", "abc", "19,9", "NaN", "inf"] {
            assert_eq!(two_decimals(bad), None, "{bad}");
        }
    }
}
