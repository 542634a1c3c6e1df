//! `catsync drift` end to end over loopback: a synced store reports no drift (exit 0); a price
//! and a title edited in the store, a product and a collection deleted there, and products
//! catsync does not manage with a catalog item's handle or SKU are each reported (exit 2 with
//! `--detailed-exitcode`); the JSON report's shape; drift only reads, within the cost budget, and
//! writes neither the state nor the built-in store.

use catsync::sandbox::{FaultSpec, Sandbox};
use serde_json::{json, Value};

use crate::support::{Output, Test};
use crate::sync::{synced_setup, Project, PARAMS, TOKEN};

/// The requests a sandbox received from `from` on: their kinds and their requested costs.
fn requests_since(s: &Sandbox, from: usize) -> Vec<catsync::sandbox::RequestRecord> {
    s.requests().into_iter().skip(from).collect()
}

/// A product the merchant creates in the store (catsync does not manage it).
pub(crate) fn create_in_store(s: &Sandbox, handle: &str, title: &str, sku: &str) {
    let query = "mutation($h: String!, $input: ProductSetInput!) { productSet(identifier: {handle: $h}, input: $input) { product { id } userErrors { message } } }";
    let input = json!({
        "handle": handle,
        "title": title,
        "productOptions": [{"name": "Size", "values": [{"name": "L"}]}],
        "variants": [{"optionValues": [{"optionName": "Size", "name": "L"}], "sku": sku, "price": "30.00"}],
    });
    let data = graphql(s, query, json!({ "h": handle, "input": input }));
    assert_eq!(data["productSet"]["userErrors"], json!([]), "{data}");
}

/// A request to the sandbox with the test token; its `data`.
fn graphql(s: &Sandbox, query: &str, variables: Value) -> Value {
    let body: Value = reqwest::blocking::Client::new()
        .post(s.graphql_url("2026-07"))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .expect("the sandbox answers")
        .json()
        .expect("JSON");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

pub(crate) fn synced() -> (Sandbox, Project) {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    let out = p.cli(&["-q", "run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    (s, p)
}

fn drift(p: &Project, args: &[&str]) -> Output {
    let mut all = vec!["drift", "p.yaml", "--detailed-exitcode"];
    all.extend_from_slice(args);
    p.cli(&all)
}

#[test]
fn a_synced_store_has_no_drift_and_drift_only_reads() {
    let (s, p) = synced();
    let before = s.requests().len();
    let out = drift(&p, &[]);
    out.succeeds(
        "
        Drift of pipeline `acme`

        Export `store`: 16 managed items read from the store
          (read in 3 requests, 20 points, 0 throttled)

        No drift: the store has what catsync last sent for 16 managed items, and no item catsync does not manage has a catalog item's handle or SKU.
        ",
    );
    let reads = requests_since(&s, before);
    assert!(reads.iter().all(|r| r.kind == "query"), "drift sends only reads: {reads:?}");
    // A plan afterwards still has nothing to do: the state was not touched.
    assert!(p.cli(&["plan", "p.yaml"]).stdout.contains("No changes"));
}

/// A synced store edited by hand: a price and a title changed, product 2009 and collection 1005
/// deleted, and two products made that look like product 2015, which catsync has not sent yet.
/// Also the ids of the products the report names.
fn edited_store() -> (Sandbox, Project, (u64, u64, u64, u64, u64)) {
    let (s, p) = synced();
    // A new catalog product (2015, `acme-tr-004`) that catsync has not sent yet.
    p.source("09-new-product.json");
    s.with_store(|store| {
        let id = |store: &catsync::sandbox::store::Store, handle: &str| {
            store.products.values().find(|p| p.handle == handle).map(|p| p.id).expect(handle)
        };
        let tee = id(store, "acme-ts-001");
        let variant = store
            .products
            .get_mut(&tee)
            .unwrap()
            .variants
            .iter_mut()
            .find(|v| v.sku.as_deref() == Some("ACME-TS-001-WHT-M"))
            .unwrap();
        variant.price = "15.00".into();
        let merino = id(store, "acme-ts-002");
        store.products.get_mut(&merino).unwrap().title = "Merino Tee (sale)".into();
        let boots = id(store, "acme-bt-002");
        assert!(store.delete_product(boots));
        let collection = store.collections.values().find(|c| c.handle == "cat-boots").map(|c| c.id).unwrap();
        assert!(store.delete_collection(collection));
    });
    create_in_store(&s, "acme-tr-004", "Hiking Shorts (made by hand)", "SHORTS-1");
    create_in_store(&s, "khaki-shorts", "Khaki shorts", "ACME-TR-004-KHK-L");
    let ids = s.inspect(|store| {
        let gid = |handle: &str| store.products.values().find(|p| p.handle == handle).map(|p| p.id).unwrap_or(0);
        (gid("acme-ts-001"), gid("acme-ts-002"), gid("acme-bt-001"), gid("acme-tr-004"), gid("khaki-shorts"))
    });
    (s, p, ids)
}

#[test]
fn edits_deletions_and_look_alikes_in_the_store_are_reported() {
    let (s, p, ids) = edited_store();
    let before = s.requests().len();
    let out = drift(&p, &[]);
    assert_eq!(out.code, 2, "{}\n{}", out.stderr, out.stdout);
    let (tee, merino, leather, by_hand, khaki) = ids;
    let expected = crate::support::unindent(&format!(
        r#"
        Drift of pipeline `acme`

        Export `store`: 16 managed items read from the store
          - category 1005 `cat-boots` (gid://shopify/Collection/COLLECTION): deleted in the store
          ~ product 2001 `acme-ts-001` (gid://shopify/Product/{tee}): edited in the store
              ~ variants[ACME-TS-001-WHT-M].price: "19.90" → "15.00"
          ~ product 2002 `acme-ts-002` (gid://shopify/Product/{merino}): edited in the store
              ~ title: "Merino Trail Tee" → "Merino Tee (sale)"
          ~ product 2008 `acme-bt-001` (gid://shopify/Product/{leather}): edited in the store
              ~ collections: ["cat-boots","cat-footwear"] → ["cat-footwear"]
          - product 2009 `acme-bt-002` (gid://shopify/Product/BOOTS): deleted in the store
          + product `acme-tr-004` (gid://shopify/Product/{by_hand}, ACTIVE): not managed by catsync, has the handle of product 2015
          + product `khaki-shorts` (gid://shopify/Product/{khaki}, ACTIVE): not managed by catsync, has SKU `ACME-TR-004-KHK-L` of product 2015
          (read in READS)

        5 managed items drifted (3 edited, 2 deleted in the store), 2 store items not managed by catsync with a catalog item's handle or SKU; 16 read.
        "#
    ));
    // The ids of what was deleted, and the read counts, are whatever they were.
    let redacted: String = out
        .stdout
        .lines()
        .map(|l| {
            let l = regex_lite_replace(l, "gid://shopify/Collection/", "COLLECTION");
            let l =
                if l.contains("acme-bt-002") { regex_lite_replace(&l, "gid://shopify/Product/", "BOOTS") } else { l };
            match l.find("(read in ") {
                Some(i) => format!("{}(read in READS)", &l[..i]),
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    similar_asserts::assert_eq!(redacted, expected);
    assert!(requests_since(&s, before).iter().all(|r| r.kind == "query"), "drift sends only reads");

    // The same as JSON: versioned, one object per export, field changes as sent → store.
    let out = drift(&p, &["--format", "json"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["pipeline"], "acme");
    assert_eq!(report["summary"], json!({"checked": 16, "edited": 3, "deleted": 2, "unmanaged": 2, "not_compared": 0}));
    let export = &report["exports"][0];
    assert_eq!(export["export"], "store");
    assert!(
        out.stdout.starts_with("{\n  \"format_version\": 1,\n  \"pipeline\": \"acme\",\n  \"environment\": null,\n  \"exports\": [\n    {\n      \"export\": \"store\",\n      \"checked\": 16,\n      \"drifted\": ["),
        "fields in a stable order: {}",
        out.stdout
    );
    let keys: Vec<&str> = export.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["checked", "drifted", "export", "not_compared", "reads", "unmanaged"]);
    assert_eq!(
        export["drifted"][1],
        json!({
            "kind": "product", "source_id": "2001", "handle": "acme-ts-001",
            "gid": format!("gid://shopify/Product/{tee}"), "state": "edited",
            "changes": [{"field": "variants[ACME-TS-001-WHT-M].price", "sent": "19.90", "store": "15.00"}],
        })
    );
    assert_eq!(export["drifted"][0]["state"], "deleted");
    assert_eq!(export["drifted"][0]["changes"], json!([]));
    assert_eq!(
        export["unmanaged"][1],
        json!({
            "kind": "product", "gid": format!("gid://shopify/Product/{khaki}"), "handle": "khaki-shorts",
            "title": "Khaki shorts", "status": "ACTIVE",
            "matches": [{"source_id": "2015", "by": "sku", "value": "ACME-TR-004-KHK-L"}],
        })
    );
    assert_eq!(export["reads"]["throttled"], 0);

    // Markdown, for a pull request or an issue.
    let out = drift(&p, &["--format", "markdown"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.contains("| ~ | product 2001 | `acme-ts-001` | `variants[ACME-TS-001-WHT-M].price` |"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("| + | product (not managed) | `khaki-shorts` | has SKU `ACME-TR-004-KHK-L` of product 2015 |"));

    // Without `--detailed-exitcode`, drift is a finding, not a failure.
    assert_eq!(p.cli(&["drift", "p.yaml"]).code, 0);
}

#[test]
fn before_the_first_sync_the_store_is_listed_for_look_alikes() {
    // A store with the merchant's own products, and a pipeline that never ran.
    let s = crate::sync::sandbox(FaultSpec::default(), 2000.0, 100.0);
    create_in_store(&s, "acme-ts-001", "Old tee", "OLD-1");
    create_in_store(&s, "blue-shirt", "Blue shirt", "ACME-TS-003-BLU-S");
    create_in_store(&s, "mug", "Mug", "MUG-1");
    let query = "mutation($input: CollectionInput!) { collectionCreate(input: $input) { userErrors { message } } }";
    graphql(&s, query, json!({"input": {"title": "Boots", "handle": "cat-boots"}}));
    let p = Project::new(&s.url(), PARAMS);
    p.source("00-full.json");
    let before = s.requests().len();
    let out = drift(&p, &[]);
    assert_eq!(out.code, 2, "{}\n{}", out.stderr, out.stdout);
    let lines: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("  + ")).collect();
    let gid = |handle: &str| {
        s.inspect(|store| store.products.values().find(|p| p.handle == handle).map(|p| p.gid()))
            .or_else(|| s.inspect(|store| store.collections.values().find(|c| c.handle == handle).map(|c| c.gid())))
            .unwrap()
    };
    assert_eq!(
        lines,
        [
            format!("  + category `cat-boots` ({}): not managed by catsync, has the handle of category 1005", gid("cat-boots")),
            format!("  + product `acme-ts-001` ({}, ACTIVE): not managed by catsync, has the handle of product 2001", gid("acme-ts-001")),
            format!("  + product `blue-shirt` ({}, ACTIVE): not managed by catsync, has SKU `ACME-TS-003-BLU-S` of product 2003", gid("blue-shirt")),
        ]
    );
    assert!(out.stdout.contains("Export `store`: 0 managed items read from the store\n"), "{}", out.stdout);
    // 16 handles and 30 SKUs would take two searches; the store's 3 products are one page.
    let roots: Vec<Vec<String>> = requests_since(&s, before).into_iter().map(|r| r.root_fields).collect();
    assert_eq!(
        roots,
        [vec!["productsCount", "collectionsCount"], vec!["products"], vec!["collections"]]
            .map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    );
}

#[test]
fn a_large_store_is_read_with_one_bulk_query_and_drifts_the_same() {
    let (s, p, _) = edited_store();
    let paged = drift(&p, &["--format", "json"]);
    let before = s.requests().len();
    let out = Test::at(p.dir())
        .env("SHOPIFY_TOKEN", TOKEN)
        .env("CATSYNC_BULK_READ_FROM", "10")
        .args(["drift", "p.yaml", "--detailed-exitcode", "--format", "json"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let without_reads = |text: &str| {
        let mut v: Value = serde_json::from_str(text).unwrap();
        v["exports"][0]["reads"] = Value::Null;
        v
    };
    similar_asserts::assert_eq!(without_reads(&out.stdout), without_reads(&paged.stdout));
    let reads = requests_since(&s, before);
    let runs: Vec<&catsync::sandbox::RequestRecord> =
        reads.iter().filter(|r| r.root_fields.iter().any(|f| f == "bulkOperationRunQuery")).collect();
    assert_eq!(runs.len(), 1, "one bulk query reads the products");
    assert!(
        !reads.iter().any(|r| r.operation_name.as_deref() == Some("CatsyncReadProducts")),
        "and no page of products"
    );
    assert!(reads.iter().all(|r| r.error_code.is_none()));
    assert_eq!(
        s.snapshot().bulk_operations.values().filter(|o| o.type_ == "QUERY" && o.status == "COMPLETED").count(),
        1
    );
}

/// `text` with the number after `prefix` (an id) replaced by `with`.
fn regex_lite_replace(text: &str, prefix: &str, with: &str) -> String {
    match text.find(prefix) {
        Some(i) => {
            let start = i + prefix.len();
            let end = text[start..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |n| start + n);
            format!("{}{with}{}", &text[..start], &text[end..])
        }
        None => text.to_string(),
    }
}

#[test]
fn reading_a_thousand_products_stays_within_the_cost_budget() {
    // 1000 generated products (about 900 visible, 4 variants each) synced by bulk files.
    let s = crate::sync::sandbox(FaultSpec::default(), 2000.0, 100.0);
    let store = format!(
        "  store:\n    type: shopify\n    inputs: [docs]\n    url: {}\n    token: ${{SHOPIFY_TOKEN}}\n",
        s.url()
    );
    let t = crate::first_hour::synthetic_project("      tags: \"{{ category.section_name }}\"\n", &store);
    let cli = |args: &[&str]| Test::at(t.path()).env("SHOPIFY_TOKEN", TOKEN).args(args).run();
    let out = cli(&["-q", "run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let before = s.requests().len();
    let out = cli(&["drift", "p.yaml", "--detailed-exitcode", "--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let checked = report["summary"]["checked"].as_u64().unwrap();
    assert!(checked > 800, "{checked} items read");
    let reads = requests_since(&s, before);
    assert!(reads.iter().all(|r| r.kind == "query"), "drift sends only reads");
    assert!(reads.iter().all(|r| r.error_code.is_none()), "none refused or throttled: {reads:?}");
    assert!(reads.iter().all(|r| r.requested_cost.unwrap_or(0) <= 1000), "within the single-query limit");
    let requested: u64 = reads.iter().filter_map(|r| r.requested_cost).sum();
    let actual: u64 = reads.iter().filter_map(|r| r.actual_cost).sum();
    eprintln!("read {checked} items in {} requests: {requested} points requested, {actual} charged", reads.len());
    // Pages of about 50 products (the budget counted per id, as Shopify may), one of collections.
    assert!(reads.len() <= 25, "{} requests", reads.len());
    assert_eq!(report["exports"][0]["reads"]["throttled"], 0);
}

#[test]
fn the_built_in_store_is_read_and_never_written() {
    let p = Project::new("sandbox://shop", PARAMS);
    p.source("00-full.json");
    assert_eq!(p.cli(&["-q", "run", "p.yaml"]).code, 0);
    let data = p.dir().join(".catsync/sandbox/shop.json");
    let before = std::fs::read(&data).expect("the built-in store's data");
    let out = drift(&p, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(
        out.stdout.contains("No drift: the store has what catsync last sent for 16 managed items"),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read(&data).unwrap(), before, "the data file is untouched");
}

#[test]
fn drift_errors_keep_their_exit_codes() {
    // No Shopify export: nothing to compare.
    let t = Test::edited(&[(
        "  store:\n    type: shopify\n    inputs: [docs]\n    url: sandbox://shop\n",
        "  audit:\n    type: jsonl_export\n    inputs: [docs]\n    path: out.jsonl\n",
    )])
    .args(["drift", "p.yaml"]);
    t.run().fails(
        1,
        "error: pipeline `shop` has no `shopify` export: drift compares a Shopify store with what catsync sent it\n",
    );
    // An invalid pipeline is exit 3; an unreachable store exit 1, naming the export.
    Test::edited(&[("type: map", "type: mapp")]).args(["drift", "p.yaml"]).run().succeeds_with_code(3);
    let p = Project::new("http://127.0.0.1:9", PARAMS);
    p.source("00-full.json");
    let out = Test::at(p.dir())
        .env("SHOPIFY_TOKEN", "shpat_secret_value")
        .env("CATSYNC_RETRY_SCALE", "0.01")
        .args(["drift", "p.yaml"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "\nerror: cannot read the store of export `store`: cannot reach the store at http://127.0.0.1:9/admin/api/"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("shpat_secret_value") && !out.stdout.contains("shpat_secret_value"));
}
