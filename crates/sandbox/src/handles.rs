//! Shopify's handle rules: normalisation of explicit handles and titles, and de-duplication of
//! generated handles (`-1`, `-2`, …, or incrementing a trailing number).

/// The longest handle Shopify accepts.
pub const MAX_HANDLE: usize = 255;

/// Normalises text into a handle the way Shopify does: lowercase, apostrophes and quotes
/// dropped, every run of other non-alphanumeric characters turned into one `-`, no leading or
/// trailing `-`. Letters of non-Latin scripts are kept (`東京` stays `東京`); accented Latin
/// letters are transliterated (`é` → `e`).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_dash = false;
    for c in text.chars() {
        if matches!(c, '\'' | '"' | '’' | '‘' | '`') {
            continue;
        }
        let piece: String = if c.is_alphanumeric() {
            if ('\u{00C0}'..='\u{024F}').contains(&c) {
                deunicode::deunicode_char(c).unwrap_or("").to_string()
            } else {
                c.to_string()
            }
        } else {
            String::new()
        };
        if piece.is_empty() || !piece.chars().all(char::is_alphanumeric) {
            pending_dash = !out.is_empty();
            continue;
        }
        if pending_dash {
            out.push('-');
            pending_dash = false;
        }
        out.extend(piece.chars().flat_map(char::to_lowercase));
    }
    out
}

/// The next candidate after `handle` is taken: a trailing number is incremented
/// (`sale-41` → `sale-42`), otherwise `-1` is appended and then incremented.
pub fn next_candidate(handle: &str) -> String {
    if let Some((stem, digits)) = handle.rsplit_once('-') {
        if !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = digits.parse::<u64>() {
                return format!("{stem}-{}", n + 1);
            }
        }
    }
    format!("{handle}-1")
}

/// The first free handle starting from `base` (which is returned when free).
pub fn dedupe(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut candidate = base.to_string();
    while taken(&candidate) {
        candidate = next_candidate(&candidate);
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_the_captures() {
        assert_eq!(normalize("  Mixed CASE / 東京 100 % "), "mixed-case-東京-100");
        assert_eq!(normalize("  Another Weird/Handle 300 % "), "another-weird-handle-300");
        assert_eq!(
            normalize("Hermes ProductSet Missing Identifier 1778123974928"),
            "hermes-productset-missing-identifier-1778123974928"
        );
        assert_eq!(normalize("ADIDAS | KID'S STAN SMITH"), "adidas-kids-stan-smith");
        assert_eq!(normalize("%%%"), "");
        assert_eq!(normalize("東京"), "東京");
        assert_eq!(normalize("Crème brûlée"), "creme-brulee");
        assert_eq!(normalize("  PRODUCT-HANDLE-LIFECYCLE-20260719114534  "), "product-handle-lifecycle-20260719114534");
    }

    #[test]
    fn de_duplication_increments_trailing_numbers() {
        assert_eq!(
            next_candidate("product-handle-lifecycle-20260719114534"),
            "product-handle-lifecycle-20260719114535"
        );
        assert_eq!(next_candidate("collection-handle-numeric-41"), "collection-handle-numeric-42");
        assert_eq!(next_candidate("product"), "product-1");
        assert_eq!(next_candidate("product-1"), "product-2");
        let taken = ["product", "product-1"];
        assert_eq!(dedupe("product", |h| taken.contains(&h)), "product-2");
    }
}
