//! Every GraphQL document catsync sends (writes and reads) validates against the real Shopify Admin schema
//! (`fixtures/shopify/admin-2026-07.graphql`, introspected from a live store).

use apollo_compiler::{ExecutableDocument, Schema};

fn real_schema() -> apollo_compiler::validation::Valid<Schema> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/shopify/admin-2026-07.graphql");
    let sdl = std::fs::read_to_string(path).expect("the real schema is in fixtures/shopify");
    Schema::parse_and_validate(sdl, "admin-2026-07.graphql").expect("the real schema is valid")
}

#[test]
fn every_document_validates_against_the_real_admin_schema() {
    let schema = real_schema();
    for (name, doc) in catsync::shopify::operations::ALL.iter().chain(catsync::shopify::read::ALL) {
        if let Err(e) = ExecutableDocument::parse_and_validate(&schema, *doc, format!("{name}.graphql")) {
            panic!("`{name}` does not validate against the Admin schema:\n{}", e.errors);
        }
    }
}

#[test]
fn the_bulk_read_query_validates_against_the_real_admin_schema() {
    let schema = real_schema();
    let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<std::collections::BTreeSet<_>>();
    for (metafields, variant_metafields) in
        [(keys(&[]), keys(&[])), (keys(&["custom.care", "catsync.family"]), keys(&["custom.size"]))]
    {
        let query = catsync::shopify::read::bulk_products_query(&metafields, &variant_metafields);
        if let Err(e) = ExecutableDocument::parse_and_validate(&schema, &query, "bulk.graphql") {
            panic!("the bulk read query does not validate against the Admin schema:\n{}\n{query}", e.errors);
        }
    }
}

#[test]
fn selecting_code_on_a_plain_user_error_is_rejected() {
    // The check above can fail: `UserError` has no `code` (SPEC §4).
    let schema = real_schema();
    let bad = catsync::shopify::operations::COLLECTION_DELETE
        .replace("userErrors { field message }", "userErrors { field message code }");
    assert!(ExecutableDocument::parse_and_validate(&schema, bad, "bad.graphql").is_err());
}
