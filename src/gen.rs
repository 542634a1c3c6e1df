//! A deterministic generator of synthetic Sales Layer exports for benchmarks: a category tree,
//! products in one or two categories, variants with unique option tuples, two or more languages,
//! images, tags, families and statuses; and delta exports changing a chosen fraction of products
//! and variants and renaming categories. The same size and seed always give the same bytes.

use std::io::Write;

use serde_json::json;

/// Catalog dimensions.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub products: usize,
    pub variants_per_product: usize,
    pub categories: usize,
    pub languages: usize,
}

impl Size {
    /// `S` (1k products), `M` (10k), `L` (100k), `XL` (1M); 4 variants each, 2 languages.
    pub fn named(name: &str) -> Option<Size> {
        let (products, categories) = match name {
            "S" => (1_000, 50),
            "M" => (10_000, 100),
            "L" => (100_000, 500),
            "XL" => (1_000_000, 2_000),
            _ => return None,
        };
        Some(Size { products, variants_per_product: 4, categories, languages: 2 })
    }
}

/// What a delta export changes, as fractions of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Delta {
    pub products: f64,
    pub variants: f64,
    pub renamed_categories: usize,
}

const LANGS: [&str; 4] = ["en", "es", "fr", "de"];
const COLORS: [&str; 6] = ["Red", "Blue", "Green", "Black", "White", "Sand"];
const SIZES: [&str; 6] = ["XS", "S", "M", "L", "XL", "XXL"];

/// xorshift64*: deterministic and fast.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn langs(size: &Size) -> &'static [&'static str] {
    &LANGS[..size.languages.clamp(1, LANGS.len())]
}

fn schema(size: &Size) -> serde_json::Value {
    let ls = langs(size);
    let ml = |base: &str| ls.iter().map(move |l| format!("{base}_{l}")).collect::<Vec<_>>();
    let mut cat = vec!["STATUS".to_string(), "ID".into(), "ID_PARENT".into(), "section_reference".into()];
    cat.extend(ml("section_name"));
    cat.push("section_status".into());
    let mut prod = vec!["STATUS".to_string(), "ID".into(), "ID_catalogue".into(), "product_reference".into()];
    prod.extend(ml("product_name"));
    prod.extend(ml("product_description"));
    prod.extend(["product_brand".to_string(), "product_family".into(), "product_tags".into(), "product_status".into()]);
    let mut prod: Vec<serde_json::Value> = prod.into_iter().map(serde_json::Value::from).collect();
    prod.push(json!({"product_image": ["STATUS", "ID", "ORG", "THM"]}));
    let mut var =
        vec!["STATUS".to_string(), "ID".into(), "ID_products".into(), "format_sku".into(), "format_price".into()];
    var.extend(ml("color"));
    var.extend(["size".to_string(), "format_status".into()]);
    json!({ "catalogue": cat, "products": prod, "product_formats": var })
}

fn category_row(size: &Size, i: usize, renamed: bool) -> serde_json::Value {
    let parent = if i < 10 { "0".to_string() } else { (1 + (i * 7919) % 10).to_string() };
    let mut row = vec![json!("M"), json!((i + 1).to_string()), json!(parent), json!(format!("CAT-{i}"))];
    for l in langs(size) {
        row.push(json!(format!("Category {i}{} ({l})", if renamed { " renamed" } else { "" })));
    }
    row.push(json!("V"));
    serde_json::Value::Array(row)
}

fn product_row(size: &Size, rng: &mut Rng, p: usize, version: u32) -> serde_json::Value {
    let c1 = 1 + rng.below(size.categories);
    let mut cats = vec![c1.to_string()];
    if rng.below(4) == 0 {
        let c2 = 1 + rng.below(size.categories);
        if c2 != c1 {
            cats.push(c2.to_string());
        }
    }
    let mut row = vec![json!("M"), json!((100_000_000 + p).to_string()), json!(cats), json!(format!("P-{p:07}"))];
    for l in langs(size) {
        row.push(json!(format!("Product {p} v{version} ({l})")));
    }
    for l in langs(size) {
        row.push(json!(format!("<p>Description of product {p} in {l}, version {version}.</p>")));
    }
    let status = match p % 20 {
        0 => "D",
        1 => "I",
        _ => "V",
    };
    row.push(json!(["ACME", "Trailhead", "Northpeak"][p % 3]));
    row.push(json!(["apparel", "footwear", "gear"][p % 3]));
    row.push(json!(format!("tag{},tag{}", p % 7, p % 11)));
    row.push(json!(status));
    row.push(json!([[
        "M",
        format!("{:08x}", p),
        format!("https://cdn.example/ORG/{p}.jpg"),
        format!("https://cdn.example/THM/{p}.jpg")
    ]]));
    serde_json::Value::Array(row)
}

fn variant_row(size: &Size, p: usize, v: usize, price_cents: u64) -> serde_json::Value {
    let id = 500_000_000 + p * size.variants_per_product + v;
    let mut row = vec![
        json!("M"),
        json!(id.to_string()),
        json!((100_000_000 + p).to_string()),
        json!(format!("SKU-{p:07}-{v}")),
        json!(format!("{}.{:02}", price_cents / 100, price_cents % 100)),
    ];
    let color = COLORS[v % COLORS.len()];
    for l in langs(size) {
        row.push(json!(format!("{color} ({l})")));
    }
    row.push(json!(SIZES[(v / COLORS.len()) % SIZES.len()]));
    row.push(json!("V"));
    serde_json::Value::Array(row)
}

fn write_rows(
    out: &mut dyn Write,
    name: &str,
    rows: impl Iterator<Item = serde_json::Value>,
    last: bool,
) -> std::io::Result<()> {
    write!(out, "\"{name}\":[")?;
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut *out, &row)?;
    }
    out.write_all(if last { b"]" } else { b"],\n" })
}

fn header(out: &mut dyn Write, size: &Size, time: i64, action: &str) -> std::io::Result<()> {
    let ls = langs(size);
    write!(
        out,
        "{{\"version\":\"1.18\",\"time\":{time},\"action\":\"{action}\",\"schema\":{},\"data_schema\":{},\"data\":{{",
        json!({"default_language": ls[0], "languages": ls}),
        schema(size)
    )
}

/// Writes a full (`refresh`) export of `size`.
pub fn full(out: &mut dyn Write, size: &Size, seed: u64) -> std::io::Result<()> {
    header(out, size, 1_800_000_000, "refresh")?;
    write_rows(out, "catalogue", (0..size.categories).map(|i| category_row(size, i, false)), false)?;
    let mut rng = Rng(seed | 1);
    write_rows(out, "products", (0..size.products).map(|p| product_row(size, &mut rng, p, 1)), false)?;
    let n = size.variants_per_product;
    write_rows(
        out,
        "product_formats",
        (0..size.products * n).map(|i| variant_row(size, i / n, i % n, 1990 + (i % 50) as u64 * 100)),
        true,
    )?;
    out.write_all(b"}}\n")
}

/// Writes a delta (`update`) export: a fraction of products changed, of variants repriced (with
/// their siblings, as `same_parent_variants=1` sends them), and some categories renamed.
pub fn delta(out: &mut dyn Write, size: &Size, seed: u64, delta: &Delta) -> std::io::Result<()> {
    header(out, size, 1_800_001_000, "update")?;
    write_rows(
        out,
        "catalogue",
        (0..delta.renamed_categories.min(size.categories)).map(|i| category_row(size, i * 3 % size.categories, true)),
        false,
    )?;
    // Products are regenerated with the same random draws, so only the changed ones differ.
    let mut rng = Rng(seed | 1);
    let step = |fraction: f64| if fraction <= 0.0 { usize::MAX } else { (1.0 / fraction).round().max(1.0) as usize };
    let (ps, vs) = (step(delta.products), step(delta.variants));
    let products: Vec<serde_json::Value> = (0..size.products)
        .filter_map(|p| {
            let row = product_row(size, &mut rng, p, 2);
            (p % ps == 0).then_some(row)
        })
        .collect();
    write_rows(out, "products", products.into_iter(), false)?;
    let n = size.variants_per_product;
    let repriced: Vec<usize> = (0..size.products).filter(|p| p % vs == 7 % vs.max(1)).collect();
    let rows = repriced.into_iter().flat_map(|p| (0..n).map(move |v| (p, v))).map(|(p, v)| {
        let i = p * n + v;
        let cents = 1990 + (i % 50) as u64 * 100 + if v == 0 { 500 } else { 0 };
        variant_row(size, p, v, cents)
    });
    write_rows(out, "product_formats", rows, true)?;
    out.write_all(b"}}\n")
}
