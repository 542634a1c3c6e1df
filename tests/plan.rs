//! Plans through the CLI over the ACME fixtures, with a JSONL export as the target: related
//! changes propagate (R01), irrelevant ones are skipped (R02, R06), statuses map and leave scope
//! as archives (R10), connector tags and disabled deletions start small (R12), mass deletions are
//! refused (BP4), and `plan` writes nothing (R03).

use serde_json::Value;

use crate::support::{repo, Test};

/// The demo mapping with only a JSONL export, reading `exports/*.json`.
fn pipeline(parameters: &str) -> String {
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).unwrap();
    let start = demo.find("  pim:").unwrap();
    let store = demo.find("  store:").unwrap();
    let audit = demo.find("  audit:").unwrap();
    let stages = format!("{}{}", &demo[start..store], &demo[audit..]);
    format!(
        "version: 1\nname: acme\nparameters:\n{parameters}\nstages:\n{}",
        stages
            .replace(r#"files: ["../fixtures/saleslayer/acme/00-full.json"]"#, r#"files: ["exports/*.json"]"#)
            .replace("path: ../.catsync/demo-audit.jsonl", "path: out/audit.jsonl")
    )
}

const DEFAULTS: &str = "  export_status: visible\n  deletions: enabled\n  languages: [en, es]";

/// A temp project with a pipeline, fed fixture exports one at a time.
struct Project {
    test: Test,
}

impl Project {
    fn new(parameters: &str) -> Project {
        Project { test: Test::new().file("p.yaml", &pipeline(parameters)) }
    }

    fn edit(&self, from: &str, to: &str) {
        let path = self.test.path().join("p.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "the pipeline has no `{from}`");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    /// Adds a fixture export to the source.
    fn source(&self, name: &str) -> &Self {
        let dir = self.test.path().join("exports");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(repo().join("fixtures/saleslayer/acme").join(name), dir.join(name)).unwrap();
        self
    }

    /// Adds an export given as text.
    fn source_text(&self, name: &str, text: &str) -> &Self {
        let dir = self.test.path().join("exports");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
        self
    }

    fn cli(&self, args: &[&str]) -> crate::support::Output {
        Test::at(self.test.path()).args(args).run()
    }

    fn run(&self) -> crate::support::Output {
        let out = self.cli(&["run", "p.yaml"]);
        assert!(out.code == 0 || out.code == 6, "run failed ({}): {}\n{}", out.code, out.stderr, out.stdout);
        out
    }

    fn plan(&self, extra: &[&str]) -> Value {
        let mut args = vec!["plan", "p.yaml", "--format", "json"];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// The JSONL export's lines.
    fn exported(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.test.path().join("out/audit.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// The ACME fixture's full export, to edit.
fn acme_full() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap())
        .unwrap()
}

/// `(kind, id, action)` of every change, in plan order.
fn changes(plan: &Value) -> Vec<(String, String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let action = match c["skipped"].as_str() {
                Some(s) => format!("{} (skipped: {s})", c["action"].as_str().unwrap()),
                None => c["action"].as_str().unwrap().to_string(),
            };
            (c["kind"].as_str().unwrap().to_string(), c["source_id"].as_str().unwrap().to_string(), action)
        })
        .collect()
}

fn change<'a>(plan: &'a Value, kind: &str, id: &str) -> &'a Value {
    plan["changes"].as_array().unwrap().iter().find(|c| c["kind"] == kind && c["source_id"] == id).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn c(kind: &str, id: &str, action: &str) -> (String, String, String) {
    (kind.to_string(), id.to_string(), action.to_string())
}

#[test]
fn first_plan_creates_every_visible_item_and_a_second_run_sends_nothing() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    let plan = p.plan(&[]);
    // 6 categories; the 10 visible products (2004, 2010 draft; 2007, 2011 invisible).
    let ids: Vec<String> = changes(&plan).into_iter().filter(|(k, _, _)| k == "product").map(|(_, id, _)| id).collect();
    assert_eq!(ids, ["2001", "2002", "2003", "2005", "2006", "2008", "2009", "2012", "2013", "2014"]);
    assert_eq!(plan["summary"]["create"], 16);
    p.run();
    assert_eq!(p.exported().len(), 16);
    let again = p.plan(&[]);
    assert!(changes(&again).is_empty(), "{again:#}");
    assert_eq!(again["summary"]["unchanged"], 16);
    p.cli(&["plan", "p.yaml", "--detailed-exitcode"]).succeeds_with_code(0);
}

#[test]
fn each_exported_line_carries_the_hash_of_its_document_as_written() {
    // The JSONL export writes each document as the queue stores it (canonical JSON), so a line's
    // `hash` is the item hash of exactly its `document` text: creates (queued from the plan's
    // encoded documents) and updates (queued from the documents the plan compared) alike.
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        document: &'a serde_json::value::RawValue,
        hash: String,
        action: String,
    }
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.source("01-rename-category.json");
    let planned = p.plan(&[]);
    p.run();
    let text = std::fs::read_to_string(p.test.path().join("out/audit.jsonl")).unwrap();
    let lines: Vec<Line> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().filter(|l| l.action == "update").count(), 4, "{text}");
    for line in &lines {
        let hash = blake3::Hasher::new_derive_key("catsync item v1").update(line.document.get().as_bytes()).finalize();
        assert_eq!(line.hash, hash.to_hex().as_str(), "{}", line.document);
    }
    let after: Vec<&str> =
        planned["changes"].as_array().unwrap().iter().map(|c| c["hash_after"].as_str().unwrap()).collect();
    let sent: Vec<&str> = lines[lines.len() - 4..].iter().map(|l| l.hash.as_str()).collect();
    assert_eq!(sent, after);

    // A run whose plan may keep no document (`CATSYNC_ENCODED_BUDGET`) renders them again as it
    // queues them: the same lines, byte for byte.
    let again = Project::new(DEFAULTS);
    again.source("00-full.json");
    let out = Test::at(again.test.path()).env("CATSYNC_ENCODED_BUDGET", "0").args(["run", "p.yaml"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first_run = text.lines().take(16).collect::<Vec<_>>().join("\n") + "\n";
    assert_eq!(std::fs::read_to_string(again.test.path().join("out/audit.jsonl")).unwrap(), first_run);
}

#[test]
fn r01_a_category_rename_updates_exactly_its_products() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.source("01-rename-category.json");
    let plan = p.plan(&[]);
    assert_eq!(
        changes(&plan),
        [
            c("category", "1002", "update"),
            c("product", "2001", "update"),
            c("product", "2002", "update"),
            c("product", "2003", "update")
        ]
    );
    for id in ["2001", "2002", "2003"] {
        let ch = change(&plan, "product", id);
        assert_eq!(strings(&ch["reasons"]), ["category 1002 changed: section_name"]);
        assert_eq!(strings(&ch["fields_changed"]), ["productType", "translations"]);
    }
}

#[test]
fn r01_a_variant_price_change_updates_exactly_its_product() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.source("02-variant-price.json");
    let plan = p.plan(&[]);
    assert_eq!(changes(&plan), [c("product", "2001", "update")]);
    let ch = change(&plan, "product", "2001");
    assert_eq!(strings(&ch["reasons"]), ["variant 3002 changed: format_price"]);
    assert_eq!(strings(&ch["fields_changed"]), ["variants"]);
}

#[test]
fn r02_a_field_no_mapping_uses_gives_an_empty_plan() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.source("03-unused-field.json");
    let out = p.cli(&["plan", "p.yaml", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("No changes: the targets match the source (16 unchanged)."), "{}", out.stdout);
}

#[test]
fn a_related_field_printed_directly_renders_as_the_template_engine_renders_it() {
    // `{{ category.section_name }}` is read straight from the category's cell; wrapped in
    // parentheses it goes through minijinja. Every document (both languages) must be the same.
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    assert!(p.exported().iter().any(|d| d.to_string().contains("productType")), "the demo maps productType");
    p.edit(r#"productType: "{{ category.section_name }}""#, r#"productType: "{{ (category.section_name) }}""#);
    let plan = p.plan(&[]);
    assert_eq!(plan["config_changed"], true);
    assert_eq!(changes(&plan), []);
}

#[test]
fn r02_editing_the_vendor_mapping_plans_only_products_whose_vendor_changes() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.edit(
        "vendor: { field: product_brand }",
        r#"vendor: "{{ product_brand | replace('Trailhead', 'Trailhead Co.') }}""#,
    );
    let plan = p.plan(&[]);
    // Visible Trailhead products: 2002, 2006, 2009, 2013.
    assert_eq!(
        changes(&plan),
        [
            c("product", "2002", "update"),
            c("product", "2006", "update"),
            c("product", "2009", "update"),
            c("product", "2013", "update")
        ]
    );
    assert_eq!(strings(&change(&plan, "product", "2002")["reasons"]), ["the pipeline configuration changed"]);
    assert_eq!(strings(&change(&plan, "product", "2002")["fields_changed"]), ["vendor"]);
    assert_eq!(plan["config_changed"], true);
    assert!(plan["warnings"][0].as_str().unwrap().contains("configuration changed since the last run"));
}

#[test]
fn r06_unchanged_documents_are_excluded_by_hash() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    // The same catalog again, as a new full export.
    let full = std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap();
    p.source_text("50-same-again.json", &full.replacen("\"time\": 1717000000", "\"time\": 1717050000", 1));
    assert!(changes(&p.plan(&[])).is_empty());
    // A mapping edit that does not change any document exports nothing either.
    p.edit("vendor: { field: product_brand }", r#"vendor: "{{ product_brand }}""#);
    let plan = p.plan(&[]);
    assert!(changes(&plan).is_empty(), "{plan:#}");
    assert_eq!(plan["config_changed"], true);
}

#[test]
fn r10_a_product_leaving_visible_is_archived_without_its_collections() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.source("04-status-draft.json");
    let plan = p.plan(&[]);
    assert_eq!(changes(&plan), [c("product", "2012", "archive")]);
    let ch = change(&plan, "product", "2012");
    assert_eq!(
        strings(&ch["reasons"]),
        ["product 2012 left scope: its status `product_status` is `D`, outside `export_status: visible`"]
    );
    p.run();
    let last = p.exported().pop().unwrap();
    assert_eq!(last["action"], "archive");
    assert_eq!(last["document"]["status"], "ARCHIVED");
    assert_eq!(last["document"]["collections"], serde_json::json!([]));
    // Archived stays archived: D → I is no further change.
    p.source("05-status-invisible.json");
    assert!(changes(&p.plan(&[])).is_empty());
}

#[test]
fn r10_status_mapping_follows_the_source_status_and_all_without_mapping_is_active() {
    let p = Project::new("  export_status: all\n  deletions: enabled\n  languages: [en, es]");
    p.source("00-full.json");
    p.run();
    let statuses: std::collections::BTreeMap<String, String> = p
        .exported()
        .iter()
        .filter(|l| l["kind"] == "product")
        .map(|l| (l["source_id"].as_str().unwrap().to_string(), l["document"]["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(statuses["2001"], "ACTIVE");
    assert_eq!(statuses["2004"], "DRAFT");
    assert_eq!(statuses["2007"], "ARCHIVED");
    assert_eq!(statuses.len(), 14);

    p.edit("      status: { from: product_status, map: { V: ACTIVE, D: DRAFT, I: ARCHIVED } }\n", "");
    let plan = p.plan(&[]);
    // Without a status mapping every product is ACTIVE: the draft and invisible ones change.
    assert_eq!(
        changes(&plan),
        [
            c("product", "2004", "update"),
            c("product", "2007", "update"),
            c("product", "2010", "update"),
            c("product", "2011", "update")
        ]
    );
}

#[test]
fn r10_invisible_variants_are_left_out_of_their_product() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    let p2001 = p.exported().into_iter().find(|l| l["source_id"] == "2001").unwrap();
    let skus: Vec<&str> =
        p2001["document"]["variants"].as_array().unwrap().iter().map(|v| v["sku"].as_str().unwrap()).collect();
    assert!(!skus.contains(&"ACME-TS-001-BLK-M"), "variant 3004 is invisible: {skus:?}");
    assert_eq!(skus.len(), 3);
}

#[test]
fn r12_connector_tags_and_disabled_deletions_start_small() {
    let p =
        Project::new("  export_status: visible\n  deletions: disabled\n  tags: [first-test]\n  languages: [en, es]");
    p.source("00-full.json");
    let plan = p.plan(&[]);
    // 2003 is tagged; 2005 through its variant 3014; 2012-2014 through category 1006.
    let products: Vec<String> =
        changes(&plan).into_iter().filter(|(k, _, _)| k == "product").map(|(_, id, _)| id).collect();
    assert_eq!(products, ["2003", "2005", "2012", "2013", "2014"]);
    // Only categories with an in-scope product become collections.
    let categories: Vec<String> =
        changes(&plan).into_iter().filter(|(k, _, _)| k == "category").map(|(_, id, _)| id).collect();
    assert_eq!(categories, ["1001", "1002", "1003", "1006"]);
    p.run();

    p.source("06-delete-product.json");
    p.source("07-tag-first-test.json");
    let plan = p.plan(&[]);
    assert_eq!(
        changes(&plan),
        [c("product", "2013", "delete (skipped: deletions disabled)"), c("product", "2006", "create")]
    );
    assert_eq!(plan["summary"]["skipped"], 1);
    assert_eq!(plan["summary"]["create"], 1);
}

#[test]
fn bp4_a_mass_deletion_is_refused_and_changes_nothing() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    // A broken full export: only one product left.
    let mut full = acme_full();
    full["time"] = 1717090000.into();
    let products = full["data"]["products"].as_array_mut().unwrap();
    products.retain(|r| r[1] == "2001");
    full["data"]["product_formats"].as_array_mut().unwrap().retain(|r| r[2] == "2001");
    p.source_text("90-broken.json", &full.to_string());
    let plan = p.plan(&[]);
    assert!(plan["warnings"][0].as_str().unwrap().contains("more than `max_delete_fraction` (20%)"), "{plan:#}");
    let before = p.exported().len();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.starts_with("error: refusing to run: export `audit`: this plan deletes or archives 14 of 16"),
        "{}",
        out.stderr
    );
    assert_eq!(p.exported().len(), before, "nothing exported");
    assert_eq!(plan, p.plan(&[]), "state untouched: the same plan again");
    let out = p.cli(&["run", "p.yaml", "--allow-mass-delete"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn r03_plan_writes_no_state_and_advances_no_cursor() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.plan(&[]);
    assert!(!p.test.path().join(".catsync").exists(), "a plan on a fresh project creates no state");
    p.run();
    p.source("01-rename-category.json");
    let first = p.plan(&[]);
    let second = p.plan(&[]);
    assert_eq!(first, second);
    assert_eq!(first["sources"][0]["cursor_before"], 1717000000);
    assert_eq!(first["sources"][0]["cursor_after"], 1717001000);
}

#[test]
fn only_and_limit_select_a_handful_of_items() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    let plan = p.plan(&["--only", "product:2003", "--only", "variant:3001"]);
    // Their category comes along: a product cannot join a collection the store does not have.
    assert_eq!(
        changes(&plan),
        [c("category", "1002", "create"), c("product", "2001", "create"), c("product", "2003", "create")]
    );
    let plan = p.plan(&["--limit", "3"]);
    assert_eq!(
        changes(&plan),
        [c("category", "1001", "create"), c("category", "1002", "create"), c("category", "1003", "create")]
    );
    let out = p.cli(&["plan", "p.yaml", "--only", "sku:1"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unknown kind `sku`: use `category`, `product` or `variant`"), "{}", out.stderr);
}

#[test]
fn a_refresh_plan_sends_every_in_scope_item_and_no_deletion() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.source("06-delete-product.json");
    let plan = p.plan(&["--refresh"]);
    assert_eq!(plan["mode"], "refresh");
    assert_eq!(plan["summary"]["update"], 15);
    assert_eq!(plan["summary"]["delete"], 0);
    assert!(changes(&plan).iter().all(|(_, _, a)| a == "update"));
}

#[test]
fn integrity_problems_are_item_errors_with_both_ids_and_the_rest_syncs() {
    let p = Project::new(DEFAULTS);
    let mut full = acme_full();
    let formats = full["data"]["product_formats"].as_array_mut().unwrap();
    // A variant of a product that is not in the export.
    let mut orphan = formats[0].clone();
    orphan[1] = "3999".into();
    orphan[2] = "2999".into();
    orphan[3] = "ACME-ORPHAN".into();
    formats.push(orphan);
    // Variant 3005 (product 2002) takes the SKU of 3001 (product 2001).
    let sku = formats.iter().find(|r| r[1] == "3001").unwrap()[3].clone();
    formats.iter_mut().find(|r| r[1] == "3005").unwrap()[3] = sku;
    // Categories 1004 and 1005 become each other's parents.
    let cats = full["data"]["catalogue"].as_array_mut().unwrap();
    cats.iter_mut().find(|r| r[1] == "1004").unwrap()[2] = "1005".into();
    p.source_text("00-full.json", &full.to_string());
    let plan = p.plan(&[]);
    let errors: Vec<String> = plan["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e["kind"].as_str().unwrap(),
                e["source_id"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            "category 1004: the category tree has a cycle: 1004 -> 1005 -> 1004",
            "category 1005: the category tree has a cycle: 1004 -> 1005 -> 1004",
            "product 2001: duplicate SKU `ACME-TS-001-WHT-S`: variants `3001` and `3005` would overwrite each other in Shopify",
            "product 2002: duplicate SKU `ACME-TS-001-WHT-S`: variants `3005` and `3001` would overwrite each other in Shopify",
            "variant 3999: variant of product `2999`, which is not in the export",
        ]
    );
    let products: Vec<String> =
        changes(&plan).into_iter().filter(|(k, _, _)| k == "product").map(|(_, id, _)| id).collect();
    assert!(!products.contains(&"2001".to_string()) && !products.contains(&"2002".to_string()));
    assert_eq!(products.len(), 8, "the other visible products still sync");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 6, "a run with item errors exits 6: {}", out.stderr);
    // The errors stay visible when the next plan reuses the run's checkpoint.
    let again = p.plan(&[]);
    assert_eq!(again["checkpoints_reused"], serde_json::json!(["shopify_docs"]));
    assert_eq!(again["errors"], plan["errors"]);
}

/// Hashes and digests vary with the document format; snapshots show them redacted.
fn redact(text: &str) -> String {
    redact_hex(text, 32)
}

fn redact_hex(text: &str, min: usize) -> String {
    let mut out = String::new();
    let mut hex = String::new();
    for ch in text.chars() {
        if ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase() {
            hex.push(ch);
            continue;
        }
        if hex.len() >= min {
            out.push_str("[hash]");
        } else {
            out.push_str(&hex);
        }
        hex.clear();
        out.push(ch);
    }
    out.push_str(&hex);
    out
}

fn formats_project() -> Project {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    p.source("01-rename-category.json");
    p.source("04-status-draft.json");
    p.source("06-delete-product.json");
    p
}

#[test]
fn plan_text_format() {
    let p = formats_project();
    p.cli(&["plan", "p.yaml"]).succeeds(
        "
        Plan for pipeline `acme` (incremental)
        Source `pim`: 3 new exports: update at 1717001000 (01-rename-category.json); update at 1717004000 (04-status-draft.json); update at 1717006000 (06-delete-product.json); 5 rows changed.

        Export `audit`:
          ~ product 2012  acme-ac-001 archive [collections, status]
              product 2012 left scope: its status `product_status` is `D`, outside `export_status: visible`
          - product 2013  acme-ac-002 delete
              product 2013 was deleted in the source
          ~ category 1002  cat-tshirts [title, translations]
              category 1002 changed: section_name
          ~ product 2001  acme-ts-001 [productType, translations]
              category 1002 changed: section_name
          ~ product 2002  acme-ts-002 [productType, translations]
              category 1002 changed: section_name
          ~ product 2003  acme-ts-003 [productType, translations]
              category 1002 changed: section_name

        Plan: 0 to create, 4 to update, 1 to archive, 1 to delete, 10 unchanged.
        ",
    );
}

#[test]
fn plan_markdown_format() {
    let p = formats_project();
    p.cli(&["plan", "p.yaml", "--format", "markdown"]).succeeds(
        "
        ### catsync plan: `acme`

        | export | create | update | archive | delete | skipped | unchanged |
        |---|---:|---:|---:|---:|---:|---:|
        | `audit` | 0 | 4 | 1 | 1 | 0 | 10 |

        <details><summary><code>audit</code>: 6 changes</summary>

        | action | item | handle | why |
        |---|---|---|---|
        | archive | product 2012 | `acme-ac-001` | product 2012 left scope: its status `product_status` is `D`, outside `export_status: visible` |
        | delete | product 2013 | `acme-ac-002` | product 2013 was deleted in the source |
        | update | category 1002 | `cat-tshirts` | category 1002 changed: section_name |
        | update | product 2001 | `acme-ts-001` | category 1002 changed: section_name |
        | update | product 2002 | `acme-ts-002` | category 1002 changed: section_name |
        | update | product 2003 | `acme-ts-003` | category 1002 changed: section_name |

        </details>
        ",
    );
}

#[test]
fn plan_json_format() {
    let p = formats_project();
    let out = p.cli(&["plan", "p.yaml", "--format", "json", "--only", "product:2013", "--only", "category:1002"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    similar_asserts::assert_eq!(
        redact(&out.stdout),
        crate::support::unindent(
            r#"
            {
              "format_version": 1,
              "pipeline": "acme",
              "pipeline_file": "p.yaml",
              "environment": null,
              "mode": "incremental",
              "config_digest": "[hash]",
              "config_changed": false,
              "state_fingerprint": "[hash]",
              "sources": [
                {
                  "stage": "pim",
                  "cursor_before": 1717000000,
                  "cursor_after": 1717006000,
                  "exports": [
                    {
                      "time": 1717001000,
                      "action": "update",
                      "origin": [
                        "exports/01-rename-category.json"
                      ]
                    },
                    {
                      "time": 1717004000,
                      "action": "update",
                      "origin": [
                        "exports/04-status-draft.json"
                      ]
                    },
                    {
                      "time": 1717006000,
                      "action": "update",
                      "origin": [
                        "exports/06-delete-product.json"
                      ]
                    }
                  ],
                  "rows_changed": 5
                }
              ],
              "changes": [
                {
                  "export": "audit",
                  "kind": "product",
                  "source_id": "2013",
                  "handle": "acme-ac-002",
                  "action": "delete",
                  "reasons": [
                    "product 2013 was deleted in the source"
                  ],
                  "fields_changed": [],
                  "hash_before": "[hash]",
                  "hash_after": null
                },
                {
                  "export": "audit",
                  "kind": "category",
                  "source_id": "1002",
                  "handle": "cat-tshirts",
                  "action": "update",
                  "reasons": [
                    "category 1002 changed: section_name"
                  ],
                  "fields_changed": [
                    "title",
                    "translations"
                  ],
                  "hash_before": "[hash]",
                  "hash_after": "[hash]"
                }
              ],
              "errors": [],
              "summary": {
                "create": 0,
                "update": 1,
                "archive": 0,
                "delete": 1,
                "skipped": 0,
                "unchanged": 10,
                "errors": 0,
                "by_export": {
                  "audit": {
                    "create": 0,
                    "update": 1,
                    "archive": 0,
                    "delete": 1,
                    "skipped": 0,
                    "unchanged": 10
                  }
                }
              },
              "warnings": []
            }
            "#
        )
    );
}

#[test]
fn explain_says_why_an_item_is_or_is_not_planned() {
    let p = formats_project();
    let out = p.cli(&["explain", "p.yaml", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    similar_asserts::assert_eq!(
        redact_hex(&out.stdout, 16),
        crate::support::unindent(
            "
        product 2001

          export `audit`:
            scope: in scope
            last export: hash [hash] (handle `acme-ts-001`)
            document now: hash [hash]
            changed fields:
              ~ productType: \"T-shirts\" → \"T-shirts & Tops\"
              ~ translations.es.product_type: \"Camisetas\" → \"Camisetas y tops\"
            planned: update
              because category 1002 changed: section_name
        "
        )
    );
    // Out of scope, with the reason.
    let out = p.cli(&["explain", "p.yaml", "product:2004"]);
    assert!(
        out.stdout
            .contains("scope: out of scope: its status `product_status` is `D`, outside `export_status: visible`"),
        "{}",
        out.stdout
    );
    // A variant is explained through its product.
    let out = p.cli(&["explain", "p.yaml", "variant:3002"]);
    assert!(out.stdout.starts_with("variant 3002\n  belongs to product 2001"), "{}", out.stdout);
}

#[test]
fn unchanged_stages_are_not_recomputed_after_a_run() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    assert!(p.plan(&[]).get("checkpoints_reused").is_none(), "nothing to reuse before a run");
    p.run();
    let plan = p.plan(&[]);
    assert_eq!(plan["checkpoints_reused"], serde_json::json!(["shopify_docs"]));
    assert!(changes(&plan).is_empty());
    assert_eq!(plan["summary"]["unchanged"], 16);
    assert_eq!(plan["sources"][0]["cursor_before"], 1717000000);
    // New source data: recomputed (and nothing to do, the field is unused).
    p.source("03-unused-field.json");
    let plan = p.plan(&[]);
    assert!(plan.get("checkpoints_reused").is_none());
    assert!(changes(&plan).is_empty());
    p.run();
    assert_eq!(p.plan(&[])["checkpoints_reused"], serde_json::json!(["shopify_docs"]));
    // A configuration change: recomputed.
    p.edit("vendor: { field: product_brand }", r#"vendor: "{{ product_brand }}""#);
    assert!(p.plan(&[]).get("checkpoints_reused").is_none());
}

#[test]
fn a_saved_plan_carries_documents_digests_and_the_state_fingerprint() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    let out = p.cli(&["plan", "p.yaml", "--out", "plan.json", "--detailed-exitcode"]);
    assert_eq!(out.code, 2, "changes: exit 2 with --detailed-exitcode");
    assert!(out.stdout.ends_with("Saved the plan to plan.json.\n"), "{}", out.stdout);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(p.test.path().join("plan.json")).unwrap()).unwrap();
    assert_eq!(saved["format_version"], 1);
    assert_eq!(saved["config_digest"].as_str().unwrap().len(), 32);
    assert_eq!(saved["state_fingerprint"].as_str().unwrap().len(), 32);
    let p2001 = saved["changes"].as_array().unwrap().iter().find(|c| c["source_id"] == "2001").unwrap();
    assert_eq!(p2001["document"]["handle"], "acme-ts-001");
    assert_eq!(p2001["document"]["translations"]["es"]["title"], "Camiseta básica de algodón");
    // The JSON format shows the same plan without documents.
    let shown = p.plan(&[]);
    assert!(shown["changes"][0].get("document").is_none());
    p.run();
    let after: Value = p.plan(&[]);
    assert_ne!(after["state_fingerprint"], saved["state_fingerprint"], "a run moves the state on");
}

/// The realistic example with its Shopify export swapped for JSONL: ERP prices joined by SKU.
fn erp_project() -> Project {
    let text = std::fs::read_to_string(repo().join("pipelines/acme-erp-prices.yaml")).unwrap();
    let start = text.find("  store:").unwrap();
    let text = format!(
        "{}  audit:\n    type: jsonl_export\n    inputs: [shopify_docs]\n    path: out/audit.jsonl\n",
        &text[..start]
    )
    .replace(r#"files: ["../fixtures/saleslayer/acme/*.json"]"#, r#"files: ["exports/*.json"]"#)
    .replace("path: ../fixtures/erp/prices.csv", "path: prices.csv")
    .replace("  tags: [first-test]\n", "")
    .replace("  families: [apparel, gear]\n", "");
    let p = Project { test: Test::new().file("p.yaml", &text) };
    std::fs::copy(repo().join("fixtures/erp/prices.csv"), p.test.path().join("prices.csv")).unwrap();
    p
}

#[test]
fn r01_a_joined_price_row_change_updates_its_product_and_stock_filters_variants() {
    let p = erp_project();
    p.source("00-full.json");
    p.run();
    let p2001 = p.exported().into_iter().find(|l| l["source_id"] == "2001").unwrap();
    let variants = p2001["document"]["variants"].as_array().unwrap();
    // Prices come from the ERP list (PIM price + 0.05); 3003 has no stock and is filtered out.
    assert_eq!(variants[0]["price"], "19.95");
    assert!(variants.iter().all(|v| v["sourceId"] != "3003"), "{variants:?}");

    let csv = std::fs::read_to_string(p.test.path().join("prices.csv")).unwrap();
    std::fs::write(
        p.test.path().join("prices.csv"),
        csv.replacen("ACME-TS-001-WHT-S,19.95", "ACME-TS-001-WHT-S,17.50", 1),
    )
    .unwrap();
    let plan = p.plan(&[]);
    assert_eq!(changes(&plan), [c("product", "2001", "update")]);
    assert_eq!(
        strings(&change(&plan, "product", "2001")["reasons"]),
        ["prices row `ACME-TS-001-WHT-S` changed: price"]
    );
}

#[test]
fn r01_a_variant_deleted_at_the_source_updates_its_product_with_the_reason() {
    let p = Project::new(DEFAULTS);
    p.source("00-full.json");
    p.run();
    let delta = serde_json::json!({
        "version": "1.18", "time": 1717070000, "action": "update",
        "data": {"catalogue": [], "products": [], "product_formats": [["D", "3003"]]}
    });
    p.source_text("70-delete-variant.json", &delta.to_string());
    let plan = p.plan(&[]);
    assert_eq!(changes(&plan), [c("product", "2001", "update")]);
    assert_eq!(strings(&change(&plan, "product", "2001")["reasons"]), ["variant 3003 removed"]);
    assert_eq!(strings(&change(&plan, "product", "2001")["fields_changed"]), ["productOptions", "variants"]);
}

#[test]
fn a_null_cell_renders_as_nothing_never_as_none() {
    // Another generator writes `null` for an empty field; it must not reach the store as the
    // text `None` (a description, a tag, an option value).
    let p = Project::new(DEFAULTS);
    let mut full = acme_full();
    let columns = |table: &str| full["data_schema"][table].as_array().unwrap().clone();
    let at = |cols: &[Value], name: &str| cols.iter().position(|c| c == name).unwrap();
    let (products, formats) = (columns("products"), columns("product_formats"));
    let (description, tags, color) =
        (at(&products, "product_description_en"), at(&products, "product_tags"), at(&formats, "color_es"));
    let row = full["data"]["products"].as_array_mut().unwrap().iter_mut().find(|r| r[1] == "2001").unwrap();
    row[description] = Value::Null;
    row[tags] = Value::Null;
    let variant = full["data"]["product_formats"].as_array_mut().unwrap().iter_mut().find(|r| r[1] == "3001").unwrap();
    variant[color] = Value::Null;
    p.source_text("00-full.json", &full.to_string());
    p.run();
    let lines = p.exported();
    assert_eq!(lines.len(), 16);
    let text = serde_json::to_string(&lines).unwrap();
    assert!(!text.contains("None"), "{text}");
    let doc = &lines.iter().find(|l| l["kind"] == "product" && l["source_id"] == "2001").unwrap()["document"];
    assert!(doc.get("descriptionHtml").is_none(), "{doc:#}");
    assert!(doc.get("tags").is_none_or(|t| t == &serde_json::json!([])), "{doc:#}");
}
