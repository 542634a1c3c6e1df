//! Drift in the plan end to end over loopback: `plan --refresh-store` reads the store and, by
//! each export's `drift.policy`, restores what was edited or deleted there (`overwrite`), or
//! leaves it and warns (`keep`, `report`); an unmanaged store product with a catalog item's SKU
//! holds that item's create back; a plain plan never reads the store; the plan writes nothing.

use catsync::sandbox::Sandbox;

use crate::drift::{create_in_store, synced};
use crate::support::Output;
use crate::sync::Project;

const TEE_SKU: &str = "ACME-TS-001-WHT-M";

/// The price of the variant with `sku` in the store.
fn price(s: &Sandbox, sku: &str) -> String {
    s.inspect(|store| {
        store
            .products
            .values()
            .flat_map(|p| &p.variants)
            .find(|v| v.sku.as_deref() == Some(sku))
            .map(|v| v.price.clone())
    })
    .expect(sku)
}

fn edit_price(s: &Sandbox, sku: &str, to: &str) {
    s.with_store(|store| {
        let v = store.products.values_mut().flat_map(|p| p.variants.iter_mut()).find(|v| v.sku.as_deref() == Some(sku));
        v.expect(sku).price = to.into();
    });
}

/// Products with `handle` in the store.
fn with_handle(s: &Sandbox, handle: &str) -> usize {
    s.inspect(|store| store.products.values().filter(|p| p.handle == handle).count())
}

fn delete_product(s: &Sandbox, handle: &str) {
    s.with_store(|store| {
        let id = store.products.values().find(|p| p.handle == handle).map(|p| p.id).expect(handle);
        assert!(store.delete_product(id));
    });
}

/// The export's `drift:` setting.
fn set_drift(p: &Project, setting: &str) {
    let file = p.dir().join("p.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text
        .replace("    token: ${SHOPIFY_TOKEN}\n", &format!("    token: ${{SHOPIFY_TOKEN}}\n    drift: {setting}\n"));
    assert_ne!(text, edited);
    std::fs::write(file, edited).unwrap();
}

/// Runs catsync in the project and asserts its exit code.
fn cli(p: &Project, args: &[&str], code: i32) -> Output {
    let out = p.cli(args);
    assert_eq!(out.code, code, "{args:?}\n{}\n{}", out.stderr, out.stdout);
    out
}

fn sends(s: &Sandbox, from: usize) -> Vec<String> {
    s.requests().into_iter().skip(from).filter(|r| r.kind != "query").map(|r| r.kind).collect()
}

#[test]
fn overwrite_restores_a_price_edited_in_the_store() {
    let (s, p) = synced();
    edit_price(&s, TEE_SKU, "15.00");
    let before = s.requests().len();
    cli(&p, &["plan", "p.yaml", "--detailed-exitcode"], 0);
    assert_eq!(s.requests().len(), before, "a plain plan sends no request to the store");

    let out = cli(&p, &["plan", "p.yaml", "--refresh-store", "--detailed-exitcode"], 2);
    similar_asserts::assert_eq!(
        out.stdout,
        crate::support::unindent(
            r#"
            Plan for pipeline `acme` (incremental)
            Source `pim`: no new export since the last run.

            Export `store`:
              ~ product 2001  acme-ts-001 [variants[ACME-TS-001-WHT-M].price]
                  edited in the store (store → catalog): variants[ACME-TS-001-WHT-M].price "15.00" → "19.90": restored (policy `overwrite`)

            Plan: 0 to create, 1 to update, 0 to archive, 0 to delete, 15 unchanged.
            "#
        )
    );
    assert!(sends(&s, before).is_empty(), "a plan only reads");
    assert_eq!(price(&s, TEE_SKU), "15.00");
    // The plan wrote nothing: a plain plan still has nothing to do.
    cli(&p, &["plan", "p.yaml", "--detailed-exitcode"], 0);

    let out = cli(&p, &["run", "p.yaml", "--refresh-store"], 0);
    assert!(
        out.stdout.contains("note: export `store`: product 2001 (`acme-ts-001`) edited in the store"),
        "{}",
        out.stdout
    );
    assert_eq!(price(&s, TEE_SKU), "19.90", "restored");
    cli(&p, &["plan", "p.yaml", "--refresh-store", "--detailed-exitcode"], 0);
    // The incremental plan, and a full evaluation, agree after the restoring run.
    cli(&p, &["plan", "p.yaml", "--detailed-exitcode"], 0);
    cli(&p, &["plan", "p.yaml", "--full", "--detailed-exitcode"], 0);
}

#[test]
fn overwrite_creates_again_a_product_deleted_in_the_store() {
    let (s, p) = synced();
    delete_product(&s, "acme-bt-002");
    let out = cli(&p, &["plan", "p.yaml", "--refresh-store", "--detailed-exitcode"], 2);
    assert!(
        out.stdout.contains(
            "  + product 2009  acme-bt-002\n      deleted in the store: created again (policy `overwrite`)\n"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Plan: 1 to create, 0 to update"), "{}", out.stdout);
    cli(&p, &["run", "p.yaml", "--refresh-store"], 0);
    assert_eq!(with_handle(&s, "acme-bt-002"), 1, "created again, once");
    // The record holds the new product's id: the next plan finds it in the store.
    cli(&p, &["plan", "p.yaml", "--refresh-store", "--detailed-exitcode"], 0);
}

#[test]
fn keep_leaves_the_store_edits_and_warns_on_every_plan_of_the_setting() {
    let (s, p) = synced();
    set_drift(&p, "{refresh: true, policy: keep}");
    edit_price(&s, TEE_SKU, "15.00");
    delete_product(&s, "acme-bt-002");
    // The setting reads the store without the flag; drift alone plans nothing.
    let out = cli(&p, &["plan", "p.yaml", "--detailed-exitcode"], 0);
    assert!(
        out.stdout.contains("product 2001 (`acme-ts-001`) edited in the store (store → catalog): variants[ACME-TS-001-WHT-M].price \"15.00\" → \"19.90\" (policy `keep`: the edits stay)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("product 2009 (`acme-bt-002`) deleted in the store (policy `keep`: it is not created again)"),
        "{}",
        out.stdout
    );
    cli(&p, &["run", "p.yaml"], 0);
    assert_eq!(price(&s, TEE_SKU), "15.00", "kept");
    assert_eq!(with_handle(&s, "acme-bt-002"), 0, "not created again");
}

#[test]
fn report_only_shows_the_drift() {
    let (s, p) = synced();
    set_drift(&p, "{policy: report}");
    edit_price(&s, TEE_SKU, "15.00");
    delete_product(&s, "acme-bt-002");
    let before = s.requests().len();
    cli(&p, &["plan", "p.yaml", "--detailed-exitcode"], 0);
    assert_eq!(s.requests().len(), before, "without `refresh: true` a plan does not read the store");
    let out = cli(&p, &["plan", "p.yaml", "--refresh-store", "--detailed-exitcode"], 0);
    assert!(out.stdout.contains("(policy `report`: nothing is changed because of it)"), "{}", out.stdout);
    let out = cli(&p, &["run", "p.yaml", "--refresh-store"], 0);
    assert!(
        out.stdout
            .contains("note: export `store`: product 2009 (`acme-bt-002`) deleted in the store (policy `report`)"),
        "{}",
        out.stdout
    );
    assert!(sends(&s, before).is_empty(), "nothing sent: {:?}", sends(&s, before));
    assert_eq!(price(&s, TEE_SKU), "15.00");
    assert_eq!(with_handle(&s, "acme-bt-002"), 0);
}

#[test]
fn an_unmanaged_product_with_a_catalog_sku_is_reported_never_overwritten_nor_duplicated() {
    let (s, p) = synced();
    // A new catalog product (2015, `acme-tr-004`) whose SKU a merchant's product already has.
    p.source("09-new-product.json");
    create_in_store(&s, "khaki-shorts", "Khaki shorts", "ACME-TR-004-KHK-L");
    // Held back, so nothing to do: exit 0.
    let out = cli(&p, &["plan", "p.yaml", "--refresh-store", "--detailed-exitcode"], 0);
    assert!(out.stdout.contains("that looks like product 2015 by sku `ACME-TR-004-KHK-L`"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("  + product 2015  acme-tr-004 create (skipped: the store has an unmanaged product like it"),
        "{}",
        out.stdout
    );
    cli(&p, &["run", "p.yaml", "--refresh-store"], 0);
    assert_eq!(with_handle(&s, "acme-tr-004"), 0, "not duplicated");
    let title =
        s.inspect(|store| store.products.values().find(|p| p.handle == "khaki-shorts").map(|p| p.title.clone()));
    assert_eq!(title.as_deref(), Some("Khaki shorts"), "not overwritten");
}
