//! `catsync import` and `run --adopt` end to end over loopback (issue 15, adoption): a store that
//! already has the catalog's products is adopted without duplicates and the first plan shows
//! updates of the fields that differ; adoption by SKU finds a product under another handle and
//! the run renames it rather than creating a second one; an ambiguous match is reported and
//! nothing is adopted for it (`run --adopt`: nothing at all, and nothing sent); `--dry-run` writes
//! nothing; adoption reads only, and the next plan evaluates everything again.

use std::collections::BTreeMap;

use catsync::sandbox::{FaultSpec, Sandbox};
use serde_json::Value;

use crate::support::Output;
use crate::sync::{synced_setup, Project, PARAMS};

/// A store filled by another catsync state (`seed`): the store has the catalog, the project's own
/// state (`.catsync`) knows nothing of it.
fn filled_store() -> (Sandbox, Project) {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    let out = p.cli(&["-q", "run", "p.yaml", "--state", "seed"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    (s, p)
}

/// Every product of the store: handle → GID.
fn products(s: &Sandbox) -> BTreeMap<String, String> {
    s.inspect(|store| store.products.values().map(|p| (p.handle.clone(), p.gid())).collect())
}

/// The plan's changes of the Shopify export: `(id, action, fields, first reason)`.
fn store_changes(p: &Project) -> Vec<(String, String, Vec<String>, String)> {
    let out = p.cli(&["plan", "p.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["export"] == "store")
        .map(|c| {
            let fields = c["fields_changed"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string());
            (
                c["source_id"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
                fields.collect(),
                c["reasons"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn import(p: &Project, args: &[&str]) -> Output {
    let mut all = vec!["import", "p.yaml"];
    all.extend_from_slice(args);
    let out = p.cli(&all);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    out
}

/// The lines of a report about items (`  ~ …`, `  = …`, `  ! …`, `  ? …`).
fn item_lines(out: &Output) -> Vec<&str> {
    out.stdout.lines().filter(|l| ["  ~ ", "  = ", "  ! ", "  ? "].iter().any(|m| l.starts_with(m))).collect()
}

#[test]
fn a_store_with_the_catalog_is_adopted_without_duplicates_and_the_first_plan_updates_what_differs() {
    let (s, p) = filled_store();
    // Edited by hand since: a price and a title.
    s.with_store(|store| {
        let tee = store.product_by_handle("acme-ts-001").unwrap().id;
        let variant = store.products.get_mut(&tee).unwrap().variants.iter_mut();
        variant.filter(|v| v.sku.as_deref() == Some("ACME-TS-001-WHT-M")).for_each(|v| v.price = "15.00".into());
        let merino = store.product_by_handle("acme-ts-002").unwrap().id;
        store.products.get_mut(&merino).unwrap().title = "Merino Tee (sale)".into();
    });
    let before = products(&s);
    let gid = |handle: &str| before[handle].clone();

    // A dry run says what it would adopt and writes nothing: not even a state directory.
    let requests = s.requests().len();
    let dry = import(&p, &["--dry-run"]);
    assert!(!p.dir().join(".catsync").exists(), "a dry run creates no state");
    assert!(s.requests().iter().skip(requests).all(|r| r.kind == "query"), "adoption only reads the store");
    assert!(dry.stdout.ends_with(
        "16 adopted (10 products, 6 collections; 7 as the catalog has it), 0 ambiguous, 0 found by SKU only, 0 not in the store (the next run creates them).\nNothing was written.\n"
    ), "{}", dry.stdout);
    assert!(store_changes(&p).iter().all(|(_, action, ..)| action == "create"));

    let out = import(&p, &[]);
    let lines = item_lines(&out);
    for (mark, id, handle, what) in [
        ("~", 2001, "acme-ts-001", "the store differs in files, variants"),
        ("~", 2002, "acme-ts-002", "the store differs in files, title"),
        ("=", 2014, "acme-ac-003", "the store has it as the catalog does"),
    ] {
        let line = format!("  {mark} product {id} `{handle}` ← {} (by handle): {what}", gid(handle));
        assert!(lines.contains(&line.as_str()), "no `{line}` in:\n{}", out.stdout);
    }
    assert!(out.stdout.ends_with(
        "Recorded as managed (the store was not written): `catsync plan` shows what the next run changes in them.\n"
    ));
    assert!(s.requests().iter().skip(requests).all(|r| r.kind == "query"), "adoption never writes to the store");

    // The first plan: updates with the real differences (the store's images are never known to
    // catsync, so products with images update them), no create.
    let changes = store_changes(&p);
    let adopted = "product 2001 was adopted from the store, which has other values than the catalog";
    assert_eq!(changes[0], ("2001".into(), "update".into(), vec!["files".into(), "variants".into()], adopted.into()));
    assert_eq!(changes[1].2, ["files", "title"]);
    assert!(changes.iter().all(|(_, action, ..)| action == "update"), "{changes:?}");
    assert_eq!(changes.len(), 9, "product 2014 (no image) is as the catalog has it: {changes:?}");

    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("COMPLETED: 0 created, 9 updated"), "{}", out.stdout);
    assert_eq!(products(&s), before, "the same products, the same GIDs: nothing duplicated");
    let price = s.inspect(|store| {
        let tee = store.product_by_handle("acme-ts-001").unwrap();
        tee.variants.iter().find(|v| v.sku.as_deref() == Some("ACME-TS-001-WHT-M")).unwrap().price.clone()
    });
    assert_eq!(price, "19.90", "the catalog's price is back");
    assert_eq!(store_changes(&p), []);
    assert_eq!(p.cli(&["drift", "p.yaml", "--detailed-exitcode"]).code, 0);
}

#[test]
fn after_an_import_the_next_plan_evaluates_everything_again() {
    // A synced project whose next plan would be incremental…
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["-q", "run", "p.yaml"]).code, 0);
    p.source("09-new-product.json");
    let delta = |p: &Project| p.cli(&["-vv", "plan", "p.yaml"]).stderr.contains("delta decoded");
    assert!(delta(&p), "a new export after a run is planned incrementally");
    // …until the merchant's own `acme-tr-004` (product 2015's handle) is adopted: the records
    // changed, so the base of the incremental engine no longer holds.
    s.with_store(|store| {
        let mut shorts = store.product_by_handle("acme-ts-003").unwrap().clone();
        shorts.id = store.alloc_id();
        shorts.handle = "acme-tr-004".into();
        shorts.media.clear();
        shorts.variants.truncate(1);
        shorts.variants[0].id = store.alloc_id();
        shorts.variants[0].sku = Some("SHORTS-1".into());
        shorts.variants[0].image = None;
        store.insert_product(shorts);
    });
    let out = import(&p, &[]);
    assert!(out.stdout.contains("1 adopted (1 product, 0 collections; 0 as the catalog has it)"), "{}", out.stdout);
    assert!(!delta(&p), "the records digest changed: the plan evaluates everything");
    let changes = store_changes(&p);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].0.as_str(), changes[0].1.as_str()), ("2015", "update"));
    let full = p.cli(&["plan", "p.yaml", "--full", "--format", "json"]);
    let planned = p.cli(&["plan", "p.yaml", "--format", "json"]);
    let changes_of = |text: &str| serde_json::from_str::<Value>(text).unwrap()["changes"].clone();
    assert_eq!(changes_of(&planned.stdout), changes_of(&full.stdout));
}

#[test]
fn adoption_by_sku_finds_a_product_under_another_handle_and_the_run_renames_it() {
    let (s, p) = filled_store();
    s.with_store(|store| {
        let tee = store.product_by_handle("acme-ts-001").unwrap().id;
        store.products.get_mut(&tee).unwrap().handle = "basic-tee".into();
    });
    let tee = products(&s)["basic-tee"].clone();
    // By handle, it is not found under its handle: reported, not adopted.
    let out = import(&p, &[]);
    assert!(item_lines(&out).contains(&format!(
        "  ? product 2001 `acme-ts-001`: not adopted: SKUs `ACME-TS-001-WHT-L`, `ACME-TS-001-WHT-M`, `ACME-TS-001-WHT-S` are on `basic-tee` ({tee}), under another handle; `--match sku` adopts it"
    ).as_str()), "{}", out.stdout);
    assert!(store_changes(&p).iter().any(|c| (c.0.as_str(), c.1.as_str()) == ("2001", "create")));
    // By SKU, it is: only the items without a record are looked for again.
    let out = import(&p, &["--match", "sku"]);
    assert_eq!(
        item_lines(&out),
        [format!("  ~ product 2001 `acme-ts-001` ← `basic-tee` {tee} (by SKU `ACME-TS-001-WHT-L`): the store differs in files, handle, variants")]
    );
    let changes = store_changes(&p);
    assert_eq!(changes.iter().find(|c| c.0 == "2001").unwrap().2, ["files", "handle", "variants"]);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("COMPLETED: 0 created"), "{}", out.stdout);
    let after = products(&s);
    assert_eq!(after.len(), 10);
    assert_eq!(after["acme-ts-001"], tee, "the same product, renamed to the catalog's handle");
    assert!(!after.contains_key("basic-tee"));
    assert_eq!(store_changes(&p), []);
}

#[test]
fn an_ambiguous_match_is_reported_and_nothing_is_adopted_for_it() {
    let (s, p) = filled_store();
    // A copy made by hand holds one of product 2001's SKUs.
    s.with_store(|store| {
        let mut copy = store.product_by_handle("acme-ts-001").unwrap().clone();
        copy.id = store.alloc_id();
        copy.handle = "tee-copy".into();
        copy.media.clear();
        copy.variants.truncate(1);
        copy.variants[0].id = store.alloc_id();
        copy.variants[0].image = None;
        store.insert_product(copy);
    });
    let (tee, copy) = (products(&s)["acme-ts-001"].clone(), products(&s)["tee-copy"].clone());

    // `run --adopt` adopts all or nothing: nothing, and sends nothing.
    let requests = s.requests().len();
    let out = p.cli(&["run", "p.yaml", "--adopt"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(
        out.stderr.contains("`--adopt` found 1 catalog item ambiguous: nothing was adopted and nothing sent"),
        "{}",
        out.stderr
    );
    assert!(s.requests().iter().skip(requests).all(|r| r.kind == "query"), "nothing sent");
    assert!(store_changes(&p).iter().all(|(_, action, ..)| action == "create"), "nothing adopted");

    // `import` adopts the others and says why not this one.
    let out = p.cli(&["import", "p.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["summary"]["adopted"], 15);
    assert_eq!(report["summary"]["ambiguous"], 1);
    let ambiguous = &report["exports"][0]["not_adopted"][0];
    assert_eq!((ambiguous["source_id"].as_str(), ambiguous["why"].as_str()), (Some("2001"), Some("ambiguous")));
    assert_eq!(
        ambiguous["reason"].as_str().unwrap(),
        format!("several store items could be it: handle `acme-ts-001` and SKUs `ACME-TS-001-WHT-L`, `ACME-TS-001-WHT-M`, `ACME-TS-001-WHT-S` are on `acme-ts-001` ({tee}); SKU `ACME-TS-001-WHT-S` is on `tee-copy` ({copy})")
    );
    let changes = store_changes(&p);
    assert_eq!(changes.iter().filter(|c| c.1 == "create").map(|c| c.0.as_str()).collect::<Vec<_>>(), ["2001"]);

    // A dry run afterwards writes nothing either.
    let fingerprint = |p: &Project| {
        let plan: Value = serde_json::from_str(&p.cli(&["plan", "p.yaml", "--format", "json"]).stdout).unwrap();
        plan["state_fingerprint"].clone()
    };
    let before = fingerprint(&p);
    let out = import(&p, &["--dry-run", "--match", "sku"]);
    assert!(out.stdout.ends_with("Nothing was written.\n"), "{}", out.stdout);
    assert_eq!(fingerprint(&p), before);
}

#[test]
fn import_and_state_import_are_told_apart() {
    let p = Project::new("http://127.0.0.1:9", PARAMS);
    let words = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let help = words(p.cli(&["--help"]).stdout);
    assert!(help.contains("import Adopt the store's existing products and collections as managed (writes the state, never the store), so the first run updates them instead of creating duplicates; `state import` restores a backup"), "{help}");
    let state = words(p.cli(&["state", "--help"]).stdout);
    assert!(state.contains("not `catsync import`, which adopts store items"), "{state}");
}

/// What lets a product adopted by SKU take the catalog's handle serves a handle renamed in the
/// catalog too: the product is found by its GID, not created again under the new handle.
#[test]
fn a_handle_renamed_in_the_catalog_renames_the_product_instead_of_creating_another() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["-q", "run", "p.yaml"]).code, 0);
    let before = products(&s);
    p.edit("handle: \"{{ product_reference | slug }}\"", "handle: \"shop-{{ product_reference | slug }}\"");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("COMPLETED: 0 created, 10 updated"), "{}", out.stdout);
    let after = products(&s);
    assert_eq!(after.len(), 10);
    assert_eq!(after["shop-acme-ts-001"], before["acme-ts-001"], "the same product, renamed");
}
