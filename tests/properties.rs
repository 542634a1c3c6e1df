//! Properties over random catalogs and random deltas: after a run exports a plan, planning again
//! finds nothing to do (R02, R06) — whatever the catalog, the scope settings and the changes.

use std::collections::BTreeMap;
use std::path::Path;

use catsync::config::secret::ProcessEnv;
use catsync::config::{load, LoadOptions};
use catsync::executor::{execute, RunRequest, Silent};
use catsync::plan::{plan, PlanOptions};
use catsync::state::{RunMode, State};
use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Catalog {
    /// id → (parent index or none, name, status)
    categories: Vec<(Option<usize>, String, char)>,
    /// (categories, name, brand, status)
    products: Vec<(Vec<usize>, String, String, char)>,
    /// (product index, price cents, color, size, status)
    variants: Vec<(usize, u32, String, String, char)>,
}

fn status() -> impl Strategy<Value = char> {
    prop_oneof![4 => Just('V'), 1 => Just('D'), 1 => Just('I')]
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![Just("Red"), Just("Blue"), Just("Green"), Just("Black"), Just("Sand")].prop_map(str::to_string)
}

fn catalog() -> impl Strategy<Value = Catalog> {
    (1usize..5, 0usize..8).prop_flat_map(|(n_cat, n_prod)| {
        let categories =
            proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>(), word(), status()), n_cat).prop_map(
                |cats| {
                    cats.into_iter()
                        .enumerate()
                        .map(|(i, (parent, root, name, st))| {
                            let parent = if i == 0 || root { None } else { Some(parent.index(i)) };
                            (parent, format!("{name} {i}"), st)
                        })
                        .collect::<Vec<_>>()
                },
            );
        let products = proptest::collection::vec(
            (proptest::collection::vec(0..n_cat, 1..3), word(), prop_oneof![Just("ACME"), Just("Trailhead")], status()),
            n_prod,
        )
        .prop_map(|ps| {
            ps.into_iter()
                .enumerate()
                .map(|(i, (mut cats, name, brand, st))| {
                    cats.dedup();
                    (cats, format!("{name} thing {i}"), brand.to_string(), st)
                })
                .collect::<Vec<_>>()
        });
        let variants = proptest::collection::vec(
            (0..n_prod.max(1), 100u32..10_000, word(), prop_oneof![Just("S"), Just("M"), Just("L")], status()),
            0..(n_prod * 3 + 1),
        )
        .prop_map(|vs| {
            vs.into_iter()
                .map(|(p, price, color, size, st)| (p, price, color, size.to_string(), st))
                .collect::<Vec<_>>()
        });
        (categories, products, variants).prop_map(move |(categories, products, mut variants)| {
            if products.is_empty() {
                variants.clear();
            }
            Catalog { categories, products, variants }
        })
    })
}

/// A random delta: each product, category and variant may change or disappear.
#[derive(Debug, Clone)]
struct Delta {
    rename_category: Option<prop::sample::Index>,
    product_status: Vec<(prop::sample::Index, char)>,
    delete_product: Option<prop::sample::Index>,
    price: Vec<(prop::sample::Index, u32)>,
}

fn delta() -> impl Strategy<Value = Delta> {
    (
        proptest::option::of(any::<prop::sample::Index>()),
        proptest::collection::vec((any::<prop::sample::Index>(), status()), 0..3),
        proptest::option::of(any::<prop::sample::Index>()),
        proptest::collection::vec((any::<prop::sample::Index>(), 100u32..10_000), 0..3),
    )
        .prop_map(|(rename_category, product_status, delete_product, price)| Delta {
            rename_category,
            product_status,
            delete_product,
            price,
        })
}

fn schema() -> Value {
    json!({
        "catalogue": ["STATUS", "ID", "ID_PARENT", "section_reference", "section_name_en", "section_status"],
        "products": ["STATUS", "ID", "ID_catalogue", "product_reference", "product_name_en", "product_brand", "product_status"],
        "product_formats": ["STATUS", "ID", "ID_products", "format_sku", "format_price", "color_en", "size", "format_status"]
    })
}

fn cat_row(i: usize, c: &(Option<usize>, String, char)) -> Value {
    let parent = c.0.map(|p| (1000 + p).to_string()).unwrap_or_else(|| "0".into());
    json!(["M", (1000 + i).to_string(), parent, format!("CAT-{i}"), c.1, c.2.to_string()])
}

fn product_row(i: usize, p: &(Vec<usize>, String, String, char)) -> Value {
    let cats: Vec<String> = p.0.iter().map(|c| (1000 + c).to_string()).collect();
    json!(["M", (2000 + i).to_string(), cats, format!("P-{i}"), p.1, p.2, p.3.to_string()])
}

fn variant_row(i: usize, v: &(usize, u32, String, String, char)) -> Value {
    json!([
        "M",
        (3000 + i).to_string(),
        (2000 + v.0).to_string(),
        format!("SKU-{i}"),
        format!("{}.{:02}", v.1 / 100, v.1 % 100),
        v.2,
        v.3,
        v.4.to_string()
    ])
}

fn page(time: i64, action: &str, data: Value) -> String {
    json!({"version": "1.18", "time": time, "action": action, "schema": {"default_language": "en", "languages": ["en"]}, "data_schema": schema(), "data": data}).to_string()
}

fn full_page(c: &Catalog) -> String {
    page(
        1000,
        "refresh",
        json!({
            "catalogue": c.categories.iter().enumerate().map(|(i, x)| cat_row(i, x)).collect::<Vec<_>>(),
            "products": c.products.iter().enumerate().map(|(i, x)| product_row(i, x)).collect::<Vec<_>>(),
            "product_formats": c.variants.iter().enumerate().map(|(i, x)| variant_row(i, x)).collect::<Vec<_>>(),
        }),
    )
}

fn delta_page(c: &Catalog, d: &Delta) -> String {
    let mut cats = Vec::new();
    let mut products: BTreeMap<usize, Value> = BTreeMap::new();
    let mut variants: BTreeMap<usize, Value> = BTreeMap::new();
    if let Some(i) = &d.rename_category {
        let i = i.index(c.categories.len());
        let mut cat = c.categories[i].clone();
        cat.1 = format!("{} renamed", cat.1);
        cats.push(cat_row(i, &cat));
    }
    if !c.products.is_empty() {
        for (i, st) in &d.product_status {
            let i = i.index(c.products.len());
            let mut p = c.products[i].clone();
            p.3 = *st;
            products.insert(i, product_row(i, &p));
        }
        if let Some(i) = &d.delete_product {
            let i = i.index(c.products.len());
            products.insert(i, json!(["D", (2000 + i).to_string()]));
            for (vi, v) in c.variants.iter().enumerate().filter(|(_, v)| v.0 == i) {
                variants.insert(vi, json!(["D", (3000 + vi).to_string()]));
                let _ = v;
            }
        }
    }
    if !c.variants.is_empty() {
        for (i, price) in &d.price {
            let i = i.index(c.variants.len());
            if variants.contains_key(&i) {
                continue;
            }
            let mut v = c.variants[i].clone();
            v.1 = *price;
            variants.insert(i, variant_row(i, &v));
        }
    }
    page(
        2000,
        "update",
        json!({"catalogue": cats, "products": products.into_values().collect::<Vec<_>>(), "product_formats": variants.into_values().collect::<Vec<_>>()}),
    )
}

fn pipeline(export_status: &str, deletions: &str) -> String {
    format!(
        r#"version: 1
name: prop
parameters:
  export_status: {export_status}
  deletions: {deletions}
stages:
  pim:
    type: saleslayer
    files: ["exports/*.json"]
  docs:
    type: map
    inputs: [pim]
    categories:
      title: "{{{{ section_name }}}}"
      handle: "{{{{ section_reference | slug }}}}"
    products:
      title: "{{{{ product_name }}}}"
      handle: "{{{{ product_reference | slug }}}}"
      vendor: {{ field: product_brand }}
      productType: "{{{{ category.section_name if category else '' }}}}"
      status: {{ from: product_status, map: {{ V: ACTIVE, D: DRAFT, I: ARCHIVED }} }}
    variants:
      sku: "{{{{ format_sku }}}}"
      price: "{{{{ format_price | money }}}}"
      options: {{ Color: "{{{{ color }}}}", Size: "{{{{ size }}}}" }}
  audit:
    type: jsonl_export
    inputs: [docs]
    path: out/audit.jsonl
"#
    )
}

fn compiled(file: &Path) -> Result<catsync::config::CompiledPipeline, TestCaseError> {
    let report = load(file, &LoadOptions { environment: None, env: &ProcessEnv });
    let rendered = report.render(false);
    report.pipeline.ok_or_else(|| TestCaseError::fail(rendered))
}

fn run_then_plan_is_empty(dir: &Path) -> Result<(), TestCaseError> {
    let file = dir.join("p.yaml");
    let opts = PlanOptions { allow_mass_delete: true, ..PlanOptions::default() };
    let request = RunRequest { mode: RunMode::Incremental, options: opts.clone(), resume: false, plan_file: None };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime
        .block_on(execute(compiled(&file)?, &dir.join(".catsync"), request, &Silent))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let pipeline = compiled(&file)?;
    let state = State::open(&dir.join(".catsync")).unwrap();
    let again = plan(&pipeline, &state, &opts).unwrap().plan;
    prop_assert_eq!(again.summary.total.actionable(), 0, "changes after a run: {:#?}", again.changes);
    // The same without the checkpoint the run stored: every stage evaluated again.
    let evaluated = plan(&pipeline, &state, &PlanOptions { ignore_checkpoints: true, ..opts }).unwrap().plan;
    prop_assert_eq!(evaluated.summary.total.actionable(), 0, "changes after a run: {:#?}", evaluated.changes);
    prop_assert_eq!(&evaluated.errors, &again.errors);
    prop_assert_eq!(evaluated.summary.total.unchanged, again.summary.total.unchanged);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn after_a_run_the_plan_is_empty(
        c in catalog(),
        d in delta(),
        export_status in prop_oneof![Just("all"), Just("visible"), Just("visible_and_draft"), Just("visible_and_invisible")],
        deletions in prop_oneof![Just("enabled"), Just("disabled")],
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("exports")).unwrap();
        std::fs::write(dir.path().join("p.yaml"), pipeline(export_status, deletions)).unwrap();
        std::fs::write(dir.path().join("exports/00-full.json"), full_page(&c)).unwrap();
        run_then_plan_is_empty(dir.path())?;
        std::fs::write(dir.path().join("exports/01-delta.json"), delta_page(&c, &d)).unwrap();
        run_then_plan_is_empty(dir.path())?;
    }
}
