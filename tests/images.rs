//! Images without churn, end to end over loopback against a sandbox that behaves like Shopify (a
//! `files` entry without `id` is a new media, media left out are deleted, processed images are
//! served from CDN URLs): updates keep a product's media, by single calls and by bulk files; an
//! image that changes replaces only its own media; a removed image's media is deleted; the plan
//! names `files` for an image change and not for a price change; a force refresh keeps the media
//! and restores one deleted in the store.

use catsync::sandbox::{FaultSpec, Sandbox};
use serde_json::Value;

use crate::support::repo;
use crate::sync::{roots, sandbox, with_bulk, Project, PARAMS};

/// Product 2001's handle: one image of its own, and variant 3002 shows another.
const HANDLE: &str = "acme-ts-001";

/// A product's media as (id, source URL), in order, and the source of each variant's image.
type Media = (Vec<(u64, String)>, Vec<Option<String>>);

/// Product 2001's media ([`Media`]).
fn media(s: &Sandbox) -> Media {
    let store = s.snapshot();
    let p = store.products.values().find(|p| p.handle == HANDLE).expect("the product is in the store");
    let media: Vec<(u64, String)> = p.media.iter().map(|m| (m.id, m.source.clone())).collect();
    let variants = p
        .variants
        .iter()
        .map(|v| v.image.and_then(|id| p.media.iter().find(|m| m.id == id)).map(|m| m.source.clone()))
        .collect();
    (media, variants)
}

fn sources(media: &[(u64, String)]) -> Vec<&str> {
    media.iter().map(|(_, s)| s.rsplit('/').next().unwrap_or_default()).collect()
}

/// A delta export at `time` with the given rows of products and variants (whole rows, as Sales
/// Layer sends them), written as `exports/NAME`.
struct Delta {
    full: Value,
}

impl Delta {
    fn new() -> Delta {
        let text = std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap();
        Delta { full: serde_json::from_str(&text).unwrap() }
    }

    fn row(&self, table: &str, id: &str) -> Value {
        self.full["data"][table].as_array().unwrap().iter().find(|r| r[1] == id).unwrap().clone()
    }

    fn write(&self, p: &Project, name: &str, time: i64, products: Vec<Value>, variants: Vec<Value>) {
        let mut page = self.full.clone();
        page["action"] = "update".into();
        page["time"] = time.into();
        page["data"] = serde_json::json!({ "catalogue": [], "products": products, "product_formats": variants });
        std::fs::write(p.dir().join("exports").join(name), page.to_string()).unwrap();
    }

    /// Variant 3002 at `price`.
    fn price(&self, p: &Project, n: i64, price: &str) {
        let mut row = self.row("product_formats", "3002");
        row[4] = price.into();
        self.write(p, &format!("{n:02}-price.json"), 1_717_000_000 + n * 1000, vec![], vec![row]);
    }

    /// Product 2001 with these images (`ORG` URLs of `cdn.acme.example`).
    fn images(&self, p: &Project, n: i64, names: &[&str]) {
        let mut row = self.row("products", "2001");
        row[13] = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                serde_json::json!([
                    "M",
                    format!("img{i}"),
                    format!("https://cdn.acme.example/ORG/{name}"),
                    format!("https://cdn.acme.example/THM/{name}")
                ])
            })
            .collect();
        self.write(p, &format!("{n:02}-images.json"), 1_717_000_000 + n * 1000, vec![row], vec![]);
    }
}

fn setup() -> (Sandbox, Project, Delta) {
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    p.source("00-full.json");
    (s, p, Delta::new())
}

#[track_caller]
fn run(p: &Project, expect: &str) {
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains(expect), "expected `{expect}`:\n{}", out.stdout);
}

/// The changed fields the plan names for product 2001.
fn planned_fields(p: &Project) -> Vec<String> {
    let out = p.cli(&["plan", "p.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let changes = plan["changes"].as_array().unwrap();
    let change = changes.iter().find(|c| c["source_id"] == "2001").expect("product 2001 is planned");
    change["fields_changed"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
}

#[test]
fn ten_price_only_updates_leave_every_media_id_unchanged() {
    let (s, p, delta) = setup();
    run(&p, "COMPLETED");
    let (before, variant_images) = media(&s);
    assert_eq!(sources(&before), ["ts-001.jpg", "ts-001-wht-m.jpg"], "the variant's image is among the product's");
    assert_eq!(variant_images[1].as_deref(), Some("https://cdn.acme.example/ORG/ts-001-wht-m.jpg"));
    let served = s.snapshot().products.values().find(|p| p.handle == HANDLE).unwrap().media[0].url.clone();
    assert!(served.starts_with("https://cdn.shopify.com/s/files/1/"), "processed images are on the CDN: {served}");

    for n in 1..=10 {
        delta.price(&p, n, &format!("{}.90", 17 + n));
        if n == 1 {
            let fields = planned_fields(&p);
            assert!(fields.contains(&"variants".to_string()) && !fields.contains(&"files".to_string()), "{fields:?}");
        }
        run(&p, "0 created, 1 updated");
        assert_eq!(media(&s), (before.clone(), variant_images.clone()), "update {n} kept every media");
    }
    let prices: Vec<String> = s
        .snapshot()
        .products
        .values()
        .find(|p| p.handle == HANDLE)
        .unwrap()
        .variants
        .iter()
        .map(|v| v.price.clone())
        .collect();
    assert!(prices.contains(&"27.90".to_string()), "the prices did change: {prices:?}");
}

#[test]
fn a_changed_image_replaces_only_its_media_and_a_removed_one_is_deleted() {
    let (s, p, delta) = setup();
    run(&p, "COMPLETED");
    let (first, _) = media(&s);

    // An image added: the others keep their media.
    delta.images(&p, 1, &["ts-001.jpg", "ts-001-back.jpg"]);
    let fields = planned_fields(&p);
    assert_eq!(fields, ["files"], "an image-only change is planned as one");
    run(&p, "0 created, 1 updated");
    let (added, variants) = media(&s);
    assert_eq!(sources(&added), ["ts-001.jpg", "ts-001-back.jpg", "ts-001-wht-m.jpg"]);
    assert_eq!((added[0].0, added[2].0), (first[0].0, first[1].0), "kept: {first:?} → {added:?}");
    assert_eq!(variants[1].as_deref(), Some("https://cdn.acme.example/ORG/ts-001-wht-m.jpg"));

    // One image changed: only its media is replaced.
    delta.images(&p, 2, &["ts-001.jpg", "ts-001-back-v2.jpg"]);
    run(&p, "0 created, 1 updated");
    let (changed, _) = media(&s);
    assert_eq!(sources(&changed), ["ts-001.jpg", "ts-001-back-v2.jpg", "ts-001-wht-m.jpg"]);
    assert_eq!((changed[0].0, changed[2].0), (added[0].0, added[2].0));
    assert_ne!(changed[1].0, added[1].0, "the changed image is a new media");

    // One image removed: its media is deleted, the others stay.
    delta.images(&p, 3, &["ts-001-back-v2.jpg"]);
    run(&p, "0 created, 1 updated");
    let (removed, variants) = media(&s);
    assert_eq!(removed, vec![changed[1].clone(), changed[2].clone()]);
    assert_eq!(variants[1].as_deref(), Some("https://cdn.acme.example/ORG/ts-001-wht-m.jpg"));
    let store = s.snapshot();
    assert!(
        !store.products.values().flat_map(|p| &p.media).any(|m| m.id == changed[0].0),
        "the removed image's media is gone from the store"
    );

    // And nothing more to send.
    run(&p, "0 created, 0 updated");
}

#[test]
fn a_media_deleted_in_the_store_is_sent_again_by_source() {
    let (s, p, delta) = setup();
    run(&p, "COMPLETED");
    let (first, _) = media(&s);
    // Someone deletes the product's own image in the store.
    s.with_store(|store| {
        let product = store.products.values_mut().find(|p| p.handle == HANDLE).unwrap();
        product.media.retain(|m| m.id != first[0].0);
    });
    // An image change sends the others by id: the store refuses the lost one, and catsync sends
    // the product again with every image by source.
    delta.images(&p, 1, &["ts-001.jpg", "ts-001-back.jpg"]);
    run(&p, "0 created, 1 updated");
    let (now, _) = media(&s);
    assert_eq!(sources(&now), ["ts-001.jpg", "ts-001-back.jpg", "ts-001-wht-m.jpg"]);
    // Recorded: the next price change keeps these.
    delta.price(&p, 2, "18.90");
    run(&p, "0 created, 1 updated");
    assert_eq!(media(&s).0, now);
}

#[test]
fn a_force_refresh_keeps_the_media_and_restores_a_deleted_one() {
    let (s, p, _) = setup();
    run(&p, "COMPLETED");
    let (first, variants) = media(&s);
    let out = p.cli(&["refresh", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert_eq!(media(&s), (first.clone(), variants.clone()), "a refresh sends the images by id");

    s.with_store(|store| store.products.values_mut().find(|p| p.handle == HANDLE).unwrap().media.truncate(1));
    let out = p.cli(&["refresh", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let (now, variants) = media(&s);
    assert_eq!(sources(&now), sources(&first), "the deleted image is back");
    assert_eq!(variants[1].as_deref(), Some("https://cdn.acme.example/ORG/ts-001-wht-m.jpg"));
}

#[test]
fn a_bulk_run_keeps_media_ids_too() {
    let (s, p, delta) = setup();
    with_bulk(&p, "threshold: 1");
    run(&p, "COMPLETED");
    let bulk_files = roots(&s, "bulkOperationRunMutation");
    assert!(bulk_files > 0 && roots(&s, "productSet") == 0, "products went through bulk files");
    let (before, variants) = media(&s);
    assert_eq!(sources(&before), ["ts-001.jpg", "ts-001-wht-m.jpg"]);

    for n in 1..=3 {
        delta.price(&p, n, &format!("{}.90", 17 + n));
        run(&p, "0 created, 1 updated");
        assert_eq!(media(&s), (before.clone(), variants.clone()), "bulk update {n} kept every media");
    }
    delta.images(&p, 4, &["ts-001-v2.jpg"]);
    run(&p, "0 created, 1 updated");
    let (after, _) = media(&s);
    assert_eq!(sources(&after), ["ts-001-v2.jpg", "ts-001-wht-m.jpg"]);
    assert_eq!(after[1].0, before[1].0, "the unchanged image kept its media");
    assert_ne!(after[0].0, before[0].0);
    assert_eq!(roots(&s, "productSet"), 0, "all through bulk files");
    assert!(roots(&s, "bulkOperationRunMutation") > bulk_files);
}

/// The store's images of product 2001 (as [`media`]) after a first run of the fixture as it is,
/// and after one of the fixture as `edit` changes it, in another store.
fn media_of_the_fixture_and_of(edit: impl FnOnce(&mut Value)) -> (Media, Media) {
    let (named, a, _) = setup();
    run(&a, "COMPLETED: 16 created");
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    let text = std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap();
    let mut full: Value = serde_json::from_str(&text).unwrap();
    edit(&mut full);
    std::fs::create_dir_all(p.dir().join("exports")).unwrap();
    std::fs::write(p.dir().join("exports/00-full.json"), full.to_string()).unwrap();
    run(&p, "COMPLETED: 16 created");
    (media(&named), media(&s))
}

/// An export whose `data_schema` names only the sizes of its image columns (`["ORG", "THM"]`),
/// while each entry still starts with its status and id, as the official SDK reads them: the
/// store gets the same images as from the fixture that names all four positions.
#[test]
fn image_columns_that_name_only_their_sizes_give_the_same_images() {
    let (named, (with_sizes_only, variants)) = media_of_the_fixture_and_of(|full| {
        let mut renamed = 0;
        for columns in full["data_schema"].as_object_mut().unwrap().values_mut() {
            for column in columns.as_array_mut().unwrap() {
                if let Some(media) = column.as_object_mut() {
                    for labels in media.values_mut() {
                        labels.as_array_mut().unwrap().retain(|l| l != "STATUS" && l != "ID");
                        renamed += 1;
                    }
                }
            }
        }
        assert_eq!(renamed, 3, "the three image columns");
    });
    assert_eq!(sources(&with_sizes_only), sources(&named.0));
    assert!(with_sizes_only.iter().all(|(_, url)| url.contains("/ORG/")), "{with_sizes_only:?}");
    assert_eq!(variants, named.1, "each variant shows the same image");
}

/// A multi-language image column (`product_image_en`, basename `product_image`) whose sizes come
/// in another order (`THM` before `ORG`): the mapping's `size: ORG` is read by that column's
/// labels, so the store gets the original images, not the thumbnails.
#[test]
fn a_multi_language_image_column_is_read_by_its_own_sizes() {
    let (named, (per_language, _)) = media_of_the_fixture_and_of(|full| {
        let columns = full["data_schema"]["products"].as_array_mut().unwrap();
        let at = columns.iter().position(|c| c.get("product_image").is_some()).unwrap();
        columns[at] = serde_json::json!({ "product_image_en": ["STATUS", "ID", "THM", "ORG"] });
        let info = full["data_schema_info"]["products"].as_object_mut().unwrap();
        let mut field = info.remove("product_image").unwrap();
        field["basename"] = "product_image".into();
        field["language_code"] = "en".into();
        info.insert("product_image_en".into(), field);
        for row in full["data"]["products"].as_array_mut().unwrap() {
            for entry in row[at].as_array_mut().into_iter().flatten() {
                entry.as_array_mut().unwrap().swap(2, 3);
            }
        }
    });
    assert_eq!(sources(&per_language), sources(&named.0));
    assert!(per_language.iter().all(|(_, url)| url.contains("/ORG/")), "{per_language:?}");
}
