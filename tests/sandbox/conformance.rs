//! Conformance with the recorded Shopify captures (`fixtures/shopify/captures/`): each capture's
//! requests are replayed into a fresh sandbox and the answers compared (see `replay.rs`). The
//! captures hold variables and responses; where they do not hold the document, the case uses
//! one that selects what the response shows (fields the sandbox does not model are listed in
//! `omit`). The summary line reports the pass rate; every case must pass.

use std::io::Read;
use std::time::{Duration, Instant};

use catsync::sandbox::{BulkHold, SandboxConfig};
use serde_json::{json, Value};

use super::replay::{CaseResult, Cost, Opts, Replay};

const EXACT: Opts<'static> = Opts { omit: &[], ignore: &[], cost: Cost::Exact };
const SHAPE: Opts<'static> = Opts { omit: &[], ignore: &[], cost: Cost::Shape };
/// Shopify's actual cost of some payloads (refunds of partly filled connections in mutation
/// results) is not modelled; the requested cost is.
const REQUESTED: Opts<'static> = Opts { omit: &[], ignore: &[], cost: Cost::Requested };

#[test]
fn the_sandbox_answers_like_the_captures() {
    let mut results: Vec<CaseResult> = Vec::new();
    for replay in [
        product_set_id_not_allowed,
        product_set_options_only,
        product_set_duplicate_variants,
        product_set_async_operation,
        product_set_input_length,
        product_set_shape_validator,
        product_set_parity,
        product_set_parity_big_store,
        product_handle_dedup,
        product_handle_validation,
        product_delete,
        collection_handle_dedup,
        collection_create_big_store,
        collection_create_initial_products,
        collection_create_and_add_products,
        collection_create_rejects_id,
        collection_create_unknown_products,
        bulk_created_status,
        bulk_concurrency_limit,
        bulk_file_size,
        translatable_content,
        translations_digest_mismatch,
        translations_error_codes,
        translations_invalid_key,
    ] {
        results.extend(replay());
    }
    let failed: Vec<&CaseResult> = results.iter().filter(|r| !r.problems.is_empty()).collect();
    let files = results.iter().map(|r| r.file.as_str()).collect::<std::collections::BTreeSet<_>>().len();
    for r in &results {
        let mark = if r.problems.is_empty() { "ok  " } else { "FAIL" };
        println!("{mark} {} :: {}", r.file, r.case);
        for p in &r.problems {
            println!("       - {p}");
        }
        for n in r.notes.iter().filter(|n| !n.starts_with("actual:") || !r.problems.is_empty()) {
            println!("       · {n}");
        }
    }
    let costs = |c: Cost| results.iter().filter(|r| r.cost == c).count();
    println!(
        "conformance: {}/{} cases passed across {files} capture files \
         (costs compared exactly in {}, requested cost only in {}, shape only in {})",
        results.len() - failed.len(),
        results.len(),
        costs(Cost::Exact),
        costs(Cost::Requested),
        costs(Cost::Shape)
    );
    assert!(failed.is_empty(), "{} conformance case(s) failed; see the output above", failed.len());
}

fn config() -> SandboxConfig {
    SandboxConfig {
        operation_delay: Duration::from_millis(20),
        bulk_start_delay: Duration::from_millis(20),
        ..SandboxConfig::default()
    }
}

/// Polls `doc` until `done` holds for the body (at most ten seconds).
fn poll(r: &mut Replay, doc: &str, vars: &Value, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (_, body) = r.client.send(doc, vars);
        if done(&body) || start.elapsed() > Duration::from_secs(10) {
            return body;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// productSet

const SET_IDENTIFIER: &str = "#graphql
  mutation ProductSetIdentifierIdNotAllowed($identifier: ProductSetIdentifiers, $input: ProductSetInput!, $synchronous: Boolean!) {
    productSet(identifier: $identifier, input: $input, synchronous: $synchronous) {
      product { id title handle }
      userErrors { field message code }
    }
  }";

fn product_set_id_not_allowed() -> Vec<CaseResult> {
    let mut r =
        Replay::new("harry-test-heelo.myshopify.com__2026-04__products__product-set-id-not-allowed.json", config());
    for case in ["idNotAllowed", "missingIdentifier"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, SET_IDENTIFIER, vars, &expected, EXACT);
    }
    r.results
}

fn product_set_options_only() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__product-set-options-only-requires-variants.json",
        config(),
    );
    let doc = "mutation ProductSetOptionsOnly($input: ProductSetInput!, $synchronous: Boolean!) {
      productSet(input: $input, synchronous: $synchronous) {
        product {
          id title status
          options { id name position values optionValues { id name hasVariants } }
          variants(first: 20) { nodes { id title selectedOptions { name value } } }
        }
        userErrors { field message }
      }
    }";
    let (vars, expected) = (r.vars("mutation/variables"), r.cap("mutation/response"));
    r.case("options without variants", doc, vars, &expected, EXACT);
    r.results
}

fn product_set_duplicate_variants() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__product-set-duplicate-variants-parity.json",
        config(),
    );
    let doc = "mutation ProductSetDuplicateVariants($input: ProductSetInput!, $synchronous: Boolean!) {
      productSet(input: $input, synchronous: $synchronous) { product { id } userErrors { field message } }
    }";
    let (vars, expected) = (r.vars("mutation/variables"), r.cap("mutation/response"));
    // This capture is hand-made from a witnessed failure; its cost figures are not Shopify's.
    r.case("duplicate variant option tuples", doc, vars, &expected, SHAPE);
    r.results
}

fn product_set_async_operation() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__product-set-async-operation-parity.json",
        config(),
    );
    let doc = "mutation ProductSetAsyncOperationParity($input: ProductSetInput!, $synchronous: Boolean!) {
      productSet(input: $input, synchronous: $synchronous) {
        product { id }
        productSetOperation { id status product { id title handle } userErrors { field message code } }
        userErrors { field message code }
      }
    }";
    let read = "query ProductSetOperationRead($id: ID!) {
      productOperation(id: $id) {
        __typename status product { id title handle }
        ... on ProductSetOperation { id userErrors { field message code } }
      }
    }";
    let (vars, expected) = (r.vars("mutation/variables"), r.cap("mutation/response"));
    r.case("synchronous: false returns a CREATED operation", doc, vars, &expected, EXACT);
    let vars = r.vars("operationRead/variables");
    poll(&mut r, read, &vars, |b| b["data"]["productOperation"]["status"] == "COMPLETE");
    let expected = r.cap("operationRead/response");
    r.case("the operation completes with the product", read, vars, &expected, EXACT);
    r.results
}

fn product_set_input_length() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__product-set-input-length-validation.json",
        config(),
    );
    let doc = "mutation ProductSetInputLength($input: ProductSetInput!, $synchronous: Boolean!) {
      productSet(input: $input, synchronous: $synchronous) {
        product { id }
        productSetOperation { id status userErrors { field message } }
        userErrors { field message }
      }
    }";
    for case in ["tooLongTitle", "tooLongHandle", "tooLongVendor", "tooLongProductType"] {
        let (vars, expected) =
            (r.vars(&format!("scenarios/{case}/variables")), r.cap(&format!("scenarios/{case}/response")));
        r.case(case, doc, vars, &expected, EXACT);
    }
    r.results
}

fn product_set_shape_validator() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__product-set-shape-validator-parity.json",
        config(),
    );
    // The layout matters: Shopify reports the limit at the `productSet` field (line 3, column 5).
    let doc = "#graphql
  mutation ProductSetShapeValidatorParity($input: ProductSetInput!, $synchronous: Boolean!) {
    productSet(input: $input, synchronous: $synchronous) {
      product {
        id
      }
      userErrors {
        field
        message
        code
      }
    }
  }
";
    let locations = "query ProductSetValidatorLocations { locations(first: 1) { nodes { id } } }";
    let expected = r.cap("locations/response");
    r.case("locations", locations, json!({}), &expected, EXACT);
    for case in ["variantLimit", "inventoryQuantitiesLimit", "inventoryItemCost", "unknownProduct"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, doc, vars, &expected, EXACT);
    }
    r.results
}

/// The productSet selection of the parity captures, minus what the sandbox does not model
/// (inventory levels and taxonomy names).
const PARITY_SET: &str = "mutation ProductSetParityPlan($identifier: ProductSetIdentifiers, $input: ProductSetInput!, $synchronous: Boolean!) {
  productSet(identifier: $identifier, input: $input, synchronous: $synchronous) {
    product {
      id title handle status vendor productType category { id } tags totalInventory
      options { id name position values optionValues { id name hasVariants } }
      variants(first: 10) {
        nodes {
          id title sku price inventoryQuantity selectedOptions { name value }
          inventoryItem { id tracked requiresShipping }
        }
      }
      metafields(first: 10) { nodes { id namespace key type value } }
    }
    productSetOperation { id status userErrors { field message } }
    userErrors { field message }
  }
}";

const PARITY_READ: &str = "query ProductSetParityRead($id: ID!, $variantOneId: ID!, $inventoryItemOneId: ID!, $variantTwoId: ID!, $inventoryItemTwoId: ID!) {
  product(id: $id) {
    id title handle status vendor productType category { id } tags totalInventory descriptionHtml templateSuffix
    seo { title description }
    options { id name position values optionValues { id name hasVariants } }
    variants(first: 10) {
      nodes {
        id title sku barcode price compareAtPrice taxable inventoryPolicy inventoryQuantity
        selectedOptions { name value }
        inventoryItem {
          id tracked requiresShipping measurement { weight { unit value } }
          provinceCodeOfOrigin harmonizedSystemCode
        }
      }
    }
    collections(first: 10) { nodes { id title handle } }
    media(first: 10) { nodes { mediaContentType alt preview { image { url } } } }
    metafield(namespace: \"custom\", key: \"material\") { id namespace key type value }
    metafields(first: 10) { nodes { id namespace key type value } }
  }
  variantOne: productVariant(id: $variantOneId) { id inventoryQuantity inventoryItem { id } product { id totalInventory } }
  stockOne: inventoryItem(id: $inventoryItemOneId) { id variant { id inventoryQuantity product { id totalInventory } } }
  variantTwo: productVariant(id: $variantTwoId) { id inventoryQuantity inventoryItem { id } product { id totalInventory } }
  stockTwo: inventoryItem(id: $inventoryItemTwoId) { id variant { id inventoryQuantity product { id totalInventory } } }
}";

const HYDRATE: &str = "
fragment ProductSetTargetHydratedProduct on Product {
  id title handle status vendor productType tags totalInventory tracksInventory createdAt updatedAt publishedAt
  descriptionHtml templateSuffix seo { title description }
  options { id name position values optionValues { id name hasVariants } }
  variants(first: 100) {
    nodes {
      id title sku barcode price compareAtPrice taxable inventoryPolicy inventoryQuantity
      selectedOptions { name value } inventoryItem { id tracked requiresShipping }
    }
  }
  collections(first: 10) { nodes { id title handle } pageInfo { hasNextPage hasPreviousPage } }
}";

/// Fields of the parity captures the sandbox does not model.
const NOT_MODELLED: &[&str] = &["fullName", "inventoryLevels", "onlineStorePreviewUrl", "countryCodeOfOrigin"];

fn product_set_parity() -> Vec<CaseResult> {
    let mut r = Replay::new("harry-test-heelo.myshopify.com__2025-01__products__product-set-parity.json", config());
    // The capture's store had these locations; the sandbox gets two of its own.
    for (captured, name) in [
        (113884070194u64, "HAR-2332 Probe Source 1783701294047"),
        (113884102962, "HAR-2332 Probe Destination 1783701294047"),
    ] {
        let ours = r.client.sandbox.with_store(|s| {
            let id = s.alloc_id();
            s.locations.insert(id, catsync::sandbox::store::Location { id, name: name.to_string(), active: true });
            id
        });
        r.learn(&format!("gid://shopify/Location/{captured}"), &format!("gid://shopify/Location/{ours}"));
    }
    let partial = Opts { omit: NOT_MODELLED, ..SHAPE };
    let (vars, expected) = (r.vars("mutation/variables"), r.cap("mutation/response"));
    r.case("create with options, variants, inventory and a metafield", PARITY_SET, vars.clone(), &expected, partial);
    let (read_vars, expected) = (r.vars("downstreamReadVariables"), r.cap("downstreamRead"));
    r.case("read after create", PARITY_READ, read_vars.clone(), &expected, partial);
    let expected = r.cap("handleParity/productSetCreateCollision/secondCreate");
    r.case("the same create again gets the next handle", PARITY_SET, vars, &expected, partial);
    // Shopify updates totals asynchronously: right after the update it still reports 7.
    let stale = "Shopify's totals lag behind the update (inventory is recomputed in the background)";
    let ignore_totals: &[(&str, &str)] = &[
        ("data.productSet.product.totalInventory", stale),
        ("data.product.totalInventory", stale),
        ("data.variantOne.product.totalInventory", stale),
        ("data.stockOne.variant.product.totalInventory", stale),
        ("data.variantTwo.product.totalInventory", stale),
        ("data.stockTwo.variant.product.totalInventory", stale),
    ];
    let lagging = Opts { omit: NOT_MODELLED, ignore: ignore_totals, cost: Cost::Shape };
    let (vars, expected) = (r.vars("update/mutation/variables"), r.cap("update/mutation/response"));
    r.case("update by identifier id replaces variants and quantities", PARITY_SET, vars, &expected, lagging);
    let expected = r.cap("update/downstreamRead");
    r.case("read after update", PARITY_READ, read_vars, &expected, lagging);
    let (vars, expected) = (
        r.vars("handleParity/productSetExplicitNormalization/variables"),
        r.cap("handleParity/productSetExplicitNormalization/response"),
    );
    r.case("an explicit handle is normalised", PARITY_SET, vars, &expected, partial);
    // The capture script added the first product to a collection between these steps.
    let collection = r.setup(
        "mutation($input: CollectionInput!) { collectionCreate(input: $input) { collection { id } } }",
        json!({"input": {"title": "Hermes Product Graph Collection 1784466577198"}}),
    )["data"]["collectionCreate"]["collection"]["id"]
        .clone();
    let product = r.map_value(&json!("gid://shopify/Product/10243923018034"));
    r.setup(
        "mutation($id: ID!, $p: [ID!]!) { collectionAddProducts(id: $id, productIds: $p) { collection { id } } }",
        json!({"id": collection, "p": [product]}),
    );
    let by_id = format!("query ProductSetTargetHydrateById($ids: [ID!]!) {{ nodes(ids: $ids) {{ ...ProductSetTargetHydratedProduct }} }}{HYDRATE}");
    let by_handle = format!(
        "query ProductSetTargetHydrateByHandle($handle: String!) {{ productByIdentifier(identifier: {{ handle: $handle }}) {{ ...ProductSetTargetHydratedProduct }} }}{HYDRATE}"
    );
    let set_doc = "mutation ProductSetPreexisting($identifier: ProductSetIdentifiers, $input: ProductSetInput!, $synchronous: Boolean!) {
      productSet(identifier: $identifier, input: $input, synchronous: $synchronous) {
        product {
          id title handle status vendor productType tags
          options { id name position values optionValues { id name hasVariants } }
          variants(first: 10) { nodes { id title sku price selectedOptions { name value } inventoryItem { id tracked requiresShipping } } }
        }
        productSetOperation { id status }
        userErrors { field message }
      }
    }";
    for (how, hydrate) in [("id", &by_id), ("handle", &by_handle)] {
        let (vars, expected) = (
            r.vars(&format!("preExistingUpdate/{how}/hydrate/variables")),
            r.cap(&format!("preExistingUpdate/{how}/hydrate/response")),
        );
        r.case(&format!("read an existing product by {how}"), hydrate, vars, &expected, partial);
        let (vars, expected) = (
            r.vars(&format!("preExistingUpdate/{how}/mutation/variables")),
            r.cap(&format!("preExistingUpdate/{how}/mutation/response")),
        );
        r.case(&format!("upsert an existing product by identifier {how}"), set_doc, vars, &expected, partial);
    }
    r.results
}

fn product_set_parity_big_store() -> Vec<CaseResult> {
    let mut r = Replay::new("very-big-test-store.myshopify.com__2025-01__products__product-set-parity.json", config());
    let location = r.client.sandbox.with_store(|s| *s.locations.keys().next().expect("a location"));
    r.learn("gid://shopify/Location/68509171945", &format!("gid://shopify/Location/{location}"));
    let doc = "mutation ProductSetParityPlan($input: ProductSetInput!, $synchronous: Boolean!) {
      productSet(input: $input, synchronous: $synchronous) {
        product {
          id title handle status vendor productType tags
          options { id name position values optionValues { id name hasVariants } }
          variants(first: 10) {
            nodes { id title sku price inventoryQuantity selectedOptions { name value } inventoryItem { tracked requiresShipping } }
          }
          metafields(first: 10) { nodes { id namespace key type value } }
        }
        productSetOperation { id status userErrors { field message } }
        userErrors { field message }
      }
    }";
    let (vars, expected) = (r.vars("mutation/variables"), r.cap("mutation/response"));
    r.case("create", doc, vars.clone(), &expected, REQUESTED);
    let expected = r.cap("handleParity/productSetCreateCollision/secondCreate");
    r.case("create again: next handle", doc, vars, &expected, REQUESTED);
    // This older capture's document had no identifier argument: the call created a product.
    let (mut vars, expected) = (
        r.vars("handleParity/productSetExplicitNormalization/variables"),
        r.cap("handleParity/productSetExplicitNormalization/response"),
    );
    vars.as_object_mut().expect("variables").remove("identifier");
    r.case("explicit handle normalised on create", doc, vars, &expected, REQUESTED);
    r.results
}

// ---------------------------------------------------------------------------------------------
// Handles, deletes

fn product_handle_dedup() -> Vec<CaseResult> {
    let mut r =
        Replay::new("harry-test-heelo.myshopify.com__2025-01__products__product-handle-dedup-parity.json", config());
    // In capture order (JSON objects do not keep it here); productDuplicate is not part of the
    // sandbox.
    for name in [
        "generatedCreateFirst",
        "generatedCreateSecond",
        "normalizedUnicodeCreate",
        "punctuationCreateFirst",
        "punctuationCreateSecond",
        "explicitCreateCollision",
        "updateTargetCreate",
        "normalizedUnicodeUpdate",
        "blankUpdate",
        "titleOnlyUpdate",
        "explicitUpdateCollision",
        "punctuationUpdate",
        "generatedProductSetFirst",
        "generatedProductSetSecond",
        "normalizedProductSetUpdate",
        "blankProductSetUpdate",
        "explicitProductSetCollision",
        "duplicateHandleOwnerCreate",
    ] {
        let op = r.cap(&format!("operations/{name}"));
        let query = op["request"]["query"].as_str().expect("query").to_string();
        let vars = r.map_value(&op["request"]["variables"]);
        r.case(name, &query, vars, &op["response"], EXACT);
    }
    let cleanup = r.cap("cleanup");
    for (i, op) in cleanup.as_array().expect("cleanup").iter().enumerate() {
        let vars = r.map_value(&op["request"]["variables"]);
        if vars["input"]["id"] == op["request"]["variables"]["input"]["id"] {
            continue; // a product the sandbox never created (the duplicate)
        }
        let query = op["request"]["query"].as_str().expect("query").to_string();
        r.case(&format!("cleanup {i}"), &query, vars, &op["response"], EXACT);
    }
    r.results
}

fn product_handle_validation() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__product-handle-validation-parity.json",
        config(),
    );
    let create = "mutation ProductHandleValidation($product: ProductCreateInput!) {
      productCreate(product: $product) { product { id title handle } userErrors { field message } }
    }";
    let update = "mutation ProductHandleValidationUpdate($product: ProductUpdateInput!) {
      productUpdate(product: $product) { product { id title handle } userErrors { field message } }
    }";
    for i in 0..5 {
        let name = format!(
            "reserved-looking handle `{}`",
            r.cap(&format!("reservedLikeCreates/{i}/name")).as_str().unwrap_or_default()
        );
        let (vars, expected) = (
            r.vars(&format!("reservedLikeCreates/{i}/variables")),
            r.cap(&format!("reservedLikeCreates/{i}/response")),
        );
        r.case(&name, create, vars, &expected, EXACT);
    }
    for case in ["unicodeCreate", "tooLongCreate"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, create, vars, &expected, EXACT);
    }
    let seed = r.cap("seedProduct");
    let created = r.setup(
        "mutation($product: ProductCreateInput!) { productCreate(product: $product) { product { id } } }",
        json!({"product": {"title": seed["title"], "handle": seed["handle"], "status": seed["status"]}}),
    );
    let id = created["data"]["productCreate"]["product"]["id"].as_str().unwrap_or_default().to_string();
    r.learn(seed["id"].as_str().unwrap_or_default(), &id);
    let (vars, expected) = (r.vars("tooLongUpdate/variables"), r.cap("tooLongUpdate/response"));
    r.case("tooLongUpdate", update, vars, &expected, EXACT);
    r.results
}

fn product_delete() -> Vec<CaseResult> {
    let mut r = Replay::new("harry-test-heelo.myshopify.com__2026-04__products__product-delete-parity.json", config());
    let created = r
        .setup("mutation { productCreate(product: {title: \"Product delete parity\"}) { product { id } } }", json!({}));
    let id = created["data"]["productCreate"]["product"]["id"].as_str().unwrap_or_default().to_string();
    r.learn("gid://shopify/Product/10224196223282", &id);
    let doc = "mutation ProductDeleteParity($input: ProductDeleteInput!) {
      productDelete(input: $input) { deletedProductId shop { id name myshopifyDomain } userErrors { field message } }
    }";
    for case in ["mutation", "validation"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, doc, vars, &expected, EXACT);
    }
    // Layouts chosen so positions match the capture (line 2, column 37; line 3, column 26).
    let missing_var = "#graphql\n  mutation ProductDeleteParityPlans($input: ProductDeleteInput!) {\n    productDelete(input: $input) { deletedProductId }\n  }\n";
    let (vars, expected) =
        (r.vars("invalidInput/variableMissingId/variables"), r.cap("invalidInput/variableMissingId/response"));
    r.case("variable without id", missing_var, vars, &expected, EXACT);
    let inline_missing = "#graphql\n  mutation {\n    productDelete(input: {}) {\n      deletedProductId\n    }\n  }\n";
    let expected = r.cap("invalidInput/inlineMissingId/response");
    r.case("inline input without id", inline_missing, json!({}), &expected, EXACT);
    let inline_null =
        "#graphql\n  mutation {\n    productDelete(input: { id: null }) {\n      deletedProductId\n    }\n  }\n";
    let expected = r.cap("invalidInput/inlineNullId/response");
    r.case("inline null id", inline_null, json!({}), &expected, EXACT);
    let read = "query ProductDeleteDownstreamRead($id: ID!, $query: String!) {
      product(id: $id) { id title }
      products(first: 5, query: $query) { edges { node { id title } } }
    }";
    let numeric = id.rsplit('/').next().unwrap_or_default().to_string();
    let expected = r.cap("downstreamRead");
    r.case("read after delete", read, json!({"id": id, "query": format!("id:{numeric}")}), &expected, EXACT);
    r.results
}

fn collection_handle_dedup() -> Vec<CaseResult> {
    let mut r =
        Replay::new("harry-test-heelo.myshopify.com__2025-01__products__collection-handle-dedup-parity.json", config());
    for name in ["nonnumericFirst", "nonnumericSecond", "numericFirst", "numericSecond"] {
        let op = r.cap(&format!("operations/{name}"));
        let query = op["request"]["query"].as_str().expect("query").to_string();
        let vars = r.map_value(&op["request"]["variables"]);
        r.case(name, &query, vars, &op["response"], EXACT);
    }
    for (i, op) in r.cap("cleanup").as_array().expect("cleanup").iter().enumerate() {
        let query = op["request"]["query"].as_str().expect("query").to_string();
        let vars = r.map_value(&op["request"]["variables"]);
        r.case(&format!("delete {i}"), &query, vars, &op["response"], EXACT);
    }
    r.results
}

const COLLECTION_WITH_PRODUCTS: &str = "mutation CollectionCreateParity($input: CollectionInput!) {
  collectionCreate(input: $input) {
    collection { id title handle products(first: 10) { nodes { id title handle } pageInfo { hasNextPage hasPreviousPage } } }
    userErrors { field message }
  }
}";

fn collection_create_big_store() -> Vec<CaseResult> {
    let mut r =
        Replay::new("very-big-test-store.myshopify.com__2025-01__products__collection-create-parity.json", config());
    let (vars, expected) = (r.vars("mutation/variables"), r.cap("mutation/response"));
    // The capture's read lists the store's other collections, which the sandbox does not have.
    r.case("create a manual collection", COLLECTION_WITH_PRODUCTS, vars, &expected, SHAPE);
    r.results
}

fn collection_create_initial_products() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__collection-create-initial-products-parity.json",
        config(),
    );
    let create_product = "mutation($input: ProductSetInput!) { productSet(input: $input) { product { id } } }";
    for (captured, title) in [(9801098789170u64, "The Inventory Not Tracked Snowboard"), (9801098821938, "Gift Card")] {
        let body = r.setup(create_product, json!({"input": {"title": title}}));
        let id = body["data"]["productSet"]["product"]["id"].as_str().unwrap_or_default().to_string();
        r.learn(&format!("gid://shopify/Product/{captured}"), &id);
    }
    let first = r.map_value(&json!("gid://shopify/Product/9801098789170"));
    r.setup(
        "mutation($input: CollectionInput!) { collectionCreate(input: $input) { collection { id } } }",
        json!({"input": {"title": "Home page", "handle": "frontpage", "products": [first]}}),
    );
    let doc = "mutation CollectionCreateInitialProducts($input: CollectionInput!, $firstProductId: ID!) {
      collectionCreate(input: $input) {
        collection {
          id title handle
          products(first: 10) { nodes { id title handle } pageInfo { hasNextPage hasPreviousPage } }
          hasProduct(id: $firstProductId)
          productsCount { count precision }
        }
        userErrors { field message }
      }
    }";
    let stale: &[(&str, &str)] =
        &[("data.collectionCreate.collection.productsCount.count", "Shopify counts the new members in the background")];
    let (vars, expected) = (r.vars("mutation/variables"), r.cap("mutation/response"));
    r.case("create with initial products", doc, vars, &expected, Opts { ignore: stale, ..SHAPE });
    let read = "query CollectionCreateInitialProductsRead($collectionId: ID!, $firstProductId: ID!, $secondProductId: ID!) {
      collection(id: $collectionId) {
        id title handle
        products(first: 10) { nodes { id title handle } pageInfo { hasNextPage hasPreviousPage } }
        hasFirstProduct: hasProduct(id: $firstProductId)
        hasSecondProduct: hasProduct(id: $secondProductId)
        productsCount { count precision }
      }
      first: product(id: $firstProductId) { id collections(first: 10) { nodes { id title handle } pageInfo { hasNextPage hasPreviousPage } } }
      second: product(id: $secondProductId) { id collections(first: 10) { nodes { id title handle } pageInfo { hasNextPage hasPreviousPage } } }
    }";
    let order: &[(&str, &str)] = &[(
        "data.first.collections.nodes",
        "Shopify lists the newest membership first; the sandbox orders a product's collections by id",
    )];
    let (vars, expected) = (r.vars("downstreamReadVariables"), r.cap("downstreamRead"));
    r.case("read the collection and its products' collections", read, vars, &expected, Opts { ignore: order, ..SHAPE });
    let delete = "mutation CollectionDelete($input: CollectionDeleteInput!) { collectionDelete(input: $input) { deletedCollectionId userErrors { field message } } }";
    let (vars, expected) = (r.vars("cleanup/variables"), r.cap("cleanup/response"));
    r.case("delete", delete, vars, &expected, EXACT);
    r.results
}

fn collection_create_and_add_products() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2025-01__products__collection-create-and-add-products-parity.json",
        config(),
    );
    let seed = r.cap("seedProduct");
    let body = r.setup(
        "mutation($input: ProductSetInput!) { productSet(input: $input) { product { id } } }",
        json!({"input": {"title": seed["title"], "handle": seed["handle"], "status": seed["status"]}}),
    );
    let id = body["data"]["productSet"]["product"]["id"].as_str().unwrap_or_default().to_string();
    r.learn(seed["id"].as_str().unwrap_or_default(), &id);
    // Named so `$input` sits where the capture's did (line 1, column 37).
    let create = "mutation CollectionMembershipCreate($input: CollectionInput!) {
      collectionCreate(input: $input) {
        collection { id title handle sortOrder ruleSet { appliedDisjunctively rules { column relation condition } } productsCount { count precision } }
        userErrors { field message }
      }
    }";
    let add = "mutation CollectionAddProducts($id: ID!, $productIds: [ID!]!) {
      collectionAddProducts(id: $id, productIds: $productIds) {
        collection { id products(first: 10) { nodes { id title handle } } }
        userErrors { field message }
      }
    }";
    let read = "query CollectionRead($id: ID!) {
      collection(id: $id) { id productsCount { count precision } products(first: 10) { nodes { id title handle } } }
    }";
    for case in ["longTitle", "reservedLike"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, create, vars, &expected, SHAPE);
    }
    let version: &[(&str, &str)] = &[
        ("errors.0.message", "the enum lists MOST_RELEVANT since API 2025-10; the capture is 2025-01"),
        (
            "errors.0.extensions.problems.0.explanation",
            "the enum lists MOST_RELEVANT since API 2025-10; the capture is 2025-01",
        ),
    ];
    let (vars, expected) = (r.vars("invalidSort/variables"), r.cap("invalidSort/response"));
    r.case("invalidSort", create, vars, &expected, Opts { ignore: version, ..SHAPE });
    let (vars, expected) = (r.vars("customCreate/variables"), r.cap("customCreate/response"));
    r.case("customCreate", create, vars, &expected, SHAPE);
    for case in ["customAdd", "customDuplicateAdd"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, add, vars, &expected, SHAPE);
    }
    let (vars, expected) = (r.vars("customRead/variables"), r.cap("customRead/response"));
    r.case("customRead", read, vars, &expected, SHAPE);
    let product = "mutation ProductCreate($product: ProductCreateInput!) {
      productCreate(product: $product) { product { id title handle createdAt variants(first: 1) { nodes { id price } } } userErrors { field message } }
    }";
    for name in ["zulu", "alpha", "mike"] {
        let (vars, expected) = (
            r.vars(&format!("windowProducts/{name}/create/variables")),
            r.cap(&format!("windowProducts/{name}/create/response")),
        );
        r.case(&format!("create product {name}"), product, vars, &expected, SHAPE);
        // The capture set prices with productVariantsBulkUpdate (not in the sandbox); productSet
        // reaches the same state.
        let update = r.vars(&format!("windowProducts/{name}/priceUpdate/variables"));
        r.setup(
            "mutation($id: ProductSetIdentifiers, $input: ProductSetInput!) { productSet(identifier: $id, input: $input) { product { id } } }",
            json!({"id": {"id": update["productId"]}, "input": {
                "productOptions": [{"name": "Title", "values": [{"name": "Default Title"}]}],
                "variants": [{"id": update["variants"][0]["id"], "optionValues": [{"optionName": "Title", "name": "Default Title"}], "price": update["variants"][0]["price"]}]
            }}),
        );
    }
    let (vars, expected) = (r.vars("windowCollectionCreate/variables"), r.cap("windowCollectionCreate/response"));
    r.case("windowCollectionCreate", create, vars, &expected, SHAPE);
    let (vars, expected) = (r.vars("windowCollectionAdd/variables"), r.cap("windowCollectionAdd/response"));
    r.case("windowCollectionAdd", add, vars, &expected, SHAPE);
    let window = "query CollectionWindow($id: ID!, $first: Int!, $after: String) {
      collection(id: $id) {
        id
        products(first: $first, after: $after) {
          edges { cursor node { id title } }
          nodes { id title }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        }
      }
    }";
    let (vars, expected) = (r.vars("windowFirstRead/variables"), r.cap("windowFirstRead/response"));
    r.case("windowFirstRead", window, vars, &expected, EXACT);
    let (vars, expected) = (r.vars("windowAfterRead/variables"), r.cap("windowAfterRead/response"));
    r.case("windowAfterRead", window, vars, &expected, REQUESTED);
    let sorts = "query CollectionSorts($id: ID!) {
      collection(id: $id) {
        id
        collectionDefault: products(first: 10) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
        manual: products(first: 10, sortKey: MANUAL) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
        bestSelling: products(first: 10, sortKey: BEST_SELLING) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
        created: products(first: 10, sortKey: CREATED) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
        idSort: products(first: 10, sortKey: ID) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
        price: products(first: 10, sortKey: PRICE) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
        relevance: products(first: 10, sortKey: RELEVANCE) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
        titleReverse: products(first: 10, sortKey: TITLE, reverse: true) { nodes { id title } pageInfo { hasNextPage hasPreviousPage } }
      }
    }";
    let (vars, expected) = (r.vars("windowSortRead/variables"), r.cap("windowSortRead/response"));
    r.case("windowSortRead", sorts, vars, &expected, SHAPE);
    r.results
}

fn collection_create_rejects_id() -> Vec<CaseResult> {
    let mut r =
        Replay::new("harry-test-heelo.myshopify.com__2026-04__products__collection-create-rejects-id.json", config());
    let doc = r.cap("scenarios/inputId/document").as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars("scenarios/inputId/variables"), r.cap("scenarios/inputId/response"));
    r.case("inputId", &doc, vars, &expected, EXACT);
    r.results
}

fn collection_create_unknown_products() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__products__collection-create-products-ruleset-validation.json",
        config(),
    );
    // Smart collections (`ruleSet`) are not part of the sandbox; the unknown-product case is.
    let doc = r.cap("scenarios/unknownProducts/document").as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars("scenarios/unknownProducts/variables"), r.cap("scenarios/unknownProducts/response"));
    r.case("unknownProducts", &doc, vars, &expected, SHAPE);
    r.results
}

// ---------------------------------------------------------------------------------------------
// Bulk operations

/// Runs a captured `stagedUploadsCreate` and learns the sandbox's path for the capture's.
fn staged_upload(r: &mut Replay, name: &str, step: &str) -> (String, Value) {
    let query = r.cap(&format!("{step}/query")).as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars(&format!("{step}/variables")), r.cap(&format!("{step}/response")));
    let body = r.case(name, &query, vars, &expected, EXACT);
    let target = body["data"]["stagedUploadsCreate"]["stagedTargets"][0].clone();
    let captured = expected["data"]["stagedUploadsCreate"]["stagedTargets"][0].clone();
    let key = |t: &Value| -> String {
        t["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "key"))
            .and_then(|p| p["value"].as_str().map(String::from))
            .unwrap_or_else(|| {
                let url = t["url"].as_str().unwrap_or_default();
                let path = url.split('?').next().unwrap_or_default();
                path.find("tmp/").map(|i| path[i..].to_string()).unwrap_or_default()
            })
    };
    let (ours, theirs) = (key(&target), key(&captured));
    r.learn(&theirs, &ours);
    (ours, target)
}

/// Uploads `content` to a staged target the way its method requires.
fn upload(r: &Replay, target: &Value, content: Vec<u8>) {
    let url = target["url"].as_str().expect("target url").to_string();
    let params: Vec<(String, String)> = target["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let response = if params.iter().any(|(n, _)| n == "key") {
        let mut form = reqwest::blocking::multipart::Form::new();
        for (n, v) in params {
            form = form.text(n, v);
        }
        form = form.part("file", reqwest::blocking::multipart::Part::bytes(content).file_name("vars.jsonl"));
        r.client.http.post(url).multipart(form).send()
    } else {
        r.client.http.put(url).body(content).send()
    }
    .expect("upload");
    assert!(response.status().is_success(), "upload failed: {}", response.status());
}

const BULK_STATUS: &str = "query BulkOperationById($id: ID!) {
  bulkOperation(id: $id) { id status type errorCode createdAt completedAt objectCount rootObjectCount fileSize url partialDataUrl query }
}";

fn bulk_created_status() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__bulk-operations__bulk-operation-run-mutation-created-status.json",
        config(),
    );
    let (_, target) = staged_upload(&mut r, "stagedUploadsCreate", "setup/stagedUpload");
    let content = r.cap("setup/uploadContent").as_str().unwrap_or_default().to_string();
    upload(&r, &target, content.into_bytes());
    r.client.sandbox.hold_bulk_operations(BulkHold::Created);
    let run = r.cap("success/run/query").as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars("success/run/variables"), r.cap("success/run/response"));
    r.case("run: CREATED", &run, vars, &expected, EXACT);
    let current = r.cap("success/currentAfterRun/query").as_str().unwrap_or_default().to_string();
    let expected = r.cap("success/currentAfterRun/response");
    r.case("currentBulkOperation after the run", &current, json!({}), &expected, EXACT);
    r.client.sandbox.hold_bulk_operations(BulkHold::None);
    let vars = r.vars("success/statusPolls/1/variables");
    poll(&mut r, BULK_STATUS, &vars, |b| b["data"]["bulkOperation"]["status"] == "COMPLETED");
    let size: &[(&str, &str)] =
        &[("data.bulkOperation.fileSize", "the result's size depends on id lengths and Shopify's escaped slashes")];
    let expected = r.cap("success/statusPolls/1/response");
    let body = r.case("COMPLETED", BULK_STATUS, vars, &expected, Opts { ignore: size, ..EXACT });
    let url = body["data"]["bulkOperation"]["url"].as_str().unwrap_or_default().to_string();
    let mut text = String::new();
    if let Ok(mut response) = r.client.http.get(&url).send() {
        let _ = response.read_to_string(&mut text);
    }
    let rows: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let expected = r.cap("success/resultRows");
    r.check("result JSONL with 0-based __lineNumber", &expected, &Value::Array(rows), SHAPE);
    let read = r.cap("success/downstreamRead/query").as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars("success/downstreamRead/variables"), r.cap("success/downstreamRead/response"));
    r.case("the created product is readable", &read, vars, &expected, EXACT);
    staged_upload(&mut r, "stagedUploadsCreate without upload", "missingUpload/stagedUpload");
    let (vars, expected) = (r.vars("missingUpload/run/variables"), r.cap("missingUpload/run/response"));
    r.case("run without an uploaded file: NO_SUCH_FILE", &run, vars, &expected, EXACT);
    let delete = r.cap("cleanup/productDelete/query").as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars("cleanup/productDelete/variables"), r.cap("cleanup/productDelete/response"));
    r.case("delete the product", &delete, vars, &expected, EXACT);
    r.results
}

fn bulk_concurrency_limit() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__bulk-operations__bulk-operation-run-mutation-concurrency-limit.json",
        config(),
    );
    let stage = "mutation($input: [StagedUploadInput!]!) { stagedUploadsCreate(input: $input) { stagedTargets { url resourceUrl parameters { name value } } } }";
    let title = r.cap("productTitle");
    r.client.sandbox.hold_bulk_operations(BulkHold::Created);
    let mut runs: Vec<Value> = r.cap("successfulRuns").as_array().cloned().unwrap_or_default();
    runs.push(r.cap("sixthRun"));
    for (i, run) in runs.iter().enumerate() {
        // Each run gets its own uploaded file, as in the capture.
        let body = r.setup(stage, json!({"input": [{"filename": format!("concurrent-{i}.jsonl"), "mimeType": "text/jsonl", "resource": "BULK_MUTATION_VARIABLES", "httpMethod": "POST"}]}));
        let target = body["data"]["stagedUploadsCreate"]["stagedTargets"][0].clone();
        let key = target["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "key"))
            .and_then(|p| p["value"].as_str())
            .unwrap_or_default()
            .to_string();
        r.learn(run["variables"]["path"].as_str().unwrap_or_default(), &key);
        upload(&r, &target, format!("{{\"product\":{{\"title\":{title}}}}}\n").into_bytes());
        let query = run["query"].as_str().unwrap_or_default().to_string();
        let vars = r.map_value(&run["variables"]);
        let name =
            if i < 5 { format!("run {} of 5: CREATED", i + 1) } else { "sixth run: OPERATION_IN_PROGRESS".to_string() };
        r.case(&name, &query, vars, &run["response"], EXACT);
    }
    for (i, cancel) in r.cap("cancelAttempts").as_array().cloned().unwrap_or_default().iter().enumerate() {
        let query = cancel["query"].as_str().unwrap_or_default().to_string();
        let vars = r.map_value(&cancel["variables"]);
        r.case(&format!("cancel {}: CANCELING", i + 1), &query, vars, &cancel["response"], EXACT);
    }
    r.client.sandbox.hold_bulk_operations(BulkHold::None);
    r.results
}

fn bulk_file_size() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__bulk-operations__bulk-operation-run-mutation-file-size.json",
        config(),
    );
    r.client.sandbox.hold_bulk_operations(BulkHold::Running);
    let (_, target) = staged_upload(&mut r, "stagedUploadsCreate (PUT)", "running/stagedUpload");
    upload(&r, &target, b"{\"product\":{\"title\":\"Bulk file size\"}}\n".to_vec());
    let run = r.cap("running/firstRun/query").as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars("running/firstRun/variables"), r.cap("running/firstRun/response"));
    r.case("a file within the limit runs", &run, vars, &expected, EXACT);
    let (_, target) =
        staged_upload(&mut r, "stagedUploadsCreate for the oversized file", "running/oversizedStagedUpload");
    // Stream the capture's 104,866,200 bytes (over 100 MB) without holding them in memory.
    let size = r.cap("running/oversizedUpload/sizeBytes").as_u64().unwrap_or(104_866_200);
    let body = reqwest::blocking::Body::sized(std::io::repeat(b'x').take(size), size);
    let response =
        r.client.http.put(target["url"].as_str().unwrap_or_default()).body(body).send().expect("oversized upload");
    assert!(response.status().is_success(), "oversized upload: {}", response.status());
    let (vars, expected) = (r.vars("running/oversizedRun/variables"), r.cap("running/oversizedRun/response"));
    r.case("a file over 100 MB: INVALID_STAGED_UPLOAD_FILE", &run, vars, &expected, EXACT);
    let current = r.cap("running/currentAfterOversized/query").as_str().unwrap_or_default().to_string();
    poll(&mut r, &current, &json!({}), |b| b["data"]["currentBulkOperation"]["status"] == "RUNNING");
    let expected = r.cap("running/currentAfterOversized/response");
    r.case("the first operation keeps running", &current, json!({}), &expected, EXACT);
    let cancel = r.cap("running/cancelAfter/query").as_str().unwrap_or_default().to_string();
    let (vars, expected) = (r.vars("running/cancelAfter/variables"), r.cap("running/cancelAfter/response"));
    r.case("cancel: CANCELING", &cancel, vars, &expected, EXACT);
    r.client.sandbox.hold_bulk_operations(BulkHold::None);
    r.results
}

// ---------------------------------------------------------------------------------------------
// Locales and translations

const SHOP_LOCALES: &str = "query ShopLocales { shopLocales { locale name primary published } }";
const ENABLE: &str = "mutation ShopLocaleEnable($locale: String!) {
  shopLocaleEnable(locale: $locale) { shopLocale { locale name primary published } userErrors { field message } }
}";
const CREATE: &str = "mutation LocalizationProductCreate($product: ProductCreateInput!) {
  productCreate(product: $product) { product { id title handle status } userErrors { field message } }
}";
const SETUP_READ: &str = "query LocalizationTranslationsErrorCodesSetupRead($resourceId: ID!) {
  shopLocales { locale name primary published }
  translatableResource(resourceId: $resourceId) {
    resourceId
    translatableContent { key value digest locale type }
    translations(locale: \"fr\") { key value locale outdated market { id } }
  }
}";
const REGISTER: &str = "mutation TranslationsRegister($resourceId: ID!, $translations: [TranslationInput!]!) {
  translationsRegister(resourceId: $resourceId, translations: $translations) {
    translations { key value locale outdated market { id } }
    userErrors { field message code }
  }
}";
const DELETE: &str = "mutation ProductDelete($input: ProductDeleteInput!) {
  productDelete(input: $input) { deletedProductId userErrors { field message } }
}";

/// Enables locales before a capture that assumes them (not compared).
fn with_locales(r: &mut Replay, locales: &[&str]) {
    for l in locales {
        r.setup(ENABLE, json!({"locale": l}));
    }
}

fn delete_product(r: &mut Replay, path: &str) {
    let expected = r.cap(path);
    let id = expected["data"]["productDelete"]["deletedProductId"].clone();
    let vars = json!({"input": {"id": r.map_value(&id)}});
    r.case("delete the product", DELETE, vars, &expected, EXACT);
}

fn translatable_content() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__localization__localization-translatable-content-product.json",
        config(),
    );
    with_locales(&mut r, &["es"]);
    let expected = r.cap("setup/shopLocales/response");
    r.case("shopLocales", SHOP_LOCALES, json!({}), &expected, EXACT);
    let (vars, expected) = (r.vars("setup/productCreate/variables"), r.cap("setup/productCreate/response"));
    r.case("productCreate with description and SEO", CREATE, vars, &expected, EXACT);
    let read = "query LocalizationTranslatableContentRead($resourceId: ID!) {
      translatableResource(resourceId: $resourceId) { resourceId translatableContent { key value digest locale type } }
    }";
    let (vars, expected) = (r.vars("read/request/variables"), r.cap("read/response"));
    r.case("translatable content with sha256 digests", read, vars, &expected, EXACT);
    delete_product(&mut r, "cleanup/productDelete");
    r.results
}

fn translations_digest_mismatch() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__localization__localization-translations-digest-mismatch.json",
        config(),
    );
    with_locales(&mut r, &["es", "fr"]);
    let (vars, expected) = (r.vars("setup/localeSetup/variables"), r.cap("setup/localeSetup/response"));
    r.case("enabling an enabled locale", ENABLE, vars, &expected, EXACT);
    let (vars, expected) = (r.vars("setup/productCreate/variables"), r.cap("setup/productCreate/response"));
    r.case("productCreate", CREATE, vars, &expected, EXACT);
    let (vars, expected) = (r.vars("setupRead/variables"), r.cap("setupRead/response"));
    r.case("locales and translatable content", SETUP_READ, vars, &expected, EXACT);
    for case in ["correctDigestRegister", "wrongDigestRegister"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, REGISTER, vars, &expected, EXACT);
    }
    let update = "mutation ProductUpdate($product: ProductUpdateInput!) {
      productUpdate(product: $product) { product { id title } userErrors { field message } }
    }";
    let (vars, expected) = (r.vars("setup/productUpdate/variables"), r.cap("setup/productUpdate/response"));
    r.case("the source title changes", update, vars, &expected, EXACT);
    let (vars, expected) = (r.vars("staleDigestRegister/variables"), r.cap("staleDigestRegister/response"));
    r.case("staleDigestRegister", REGISTER, vars, &expected, EXACT);
    delete_product(&mut r, "cleanup/productDelete");
    r.results
}

fn translations_error_codes() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__localization__localization-translations-error-codes.json",
        config(),
    );
    with_locales(&mut r, &["de"]);
    r.client.sandbox.with_store(|s| {
        for l in s.locales.iter_mut().filter(|l| l.locale == "de") {
            l.published = true;
        }
    });
    let create = "mutation ProductCreate($product: ProductCreateInput!) {
      productCreate(product: $product) { product { id handle title status } userErrors { field message } }
    }";
    let (vars, expected) = (r.vars("setup/productCreate/variables"), r.cap("setup/productCreate/response"));
    r.case("productCreate", create, vars, &expected, EXACT);
    let expected = r.cap("setup/localeSetup");
    r.case("enable fr", ENABLE, json!({"locale": "fr"}), &expected, EXACT);
    let (vars, expected) = (r.vars("setupRead/variables"), r.cap("setupRead/response"));
    r.case("locales and translatable content", SETUP_READ, vars, &expected, EXACT);
    for case in ["emptyRegister", "blankValue", "tooManyKeys"] {
        let (vars, expected) = (r.vars(&format!("{case}/variables")), r.cap(&format!("{case}/response")));
        r.case(case, REGISTER, vars, &expected, EXACT);
    }
    let remove = "mutation TranslationsRemove($resourceId: ID!, $keys: [String!]!, $locales: [String!]!) {
      translationsRemove(resourceId: $resourceId, translationKeys: $keys, locales: $locales) {
        translations { key value locale }
        userErrors { field message code }
      }
    }";
    let (vars, expected) = (r.vars("removeEmptyLocales/variables"), r.cap("removeEmptyLocales/response"));
    r.case("removeEmptyLocales", remove, vars, &expected, EXACT);
    delete_product(&mut r, "cleanup/productDelete");
    let disable = "mutation ShopLocaleDisable($locale: String!) { shopLocaleDisable(locale: $locale) { locale userErrors { field message } } }";
    let expected = r.cap("cleanup/shopLocaleDisable");
    r.case("disable fr", disable, json!({"locale": "fr"}), &expected, EXACT);
    r.results
}

fn translations_invalid_key() -> Vec<CaseResult> {
    let mut r = Replay::new(
        "harry-test-heelo.myshopify.com__2026-04__localization__localization-translations-invalid-key.json",
        config(),
    );
    with_locales(&mut r, &["es"]);
    let (vars, expected) = (r.vars("setup/localeSetup/variables"), r.cap("setup/localeSetup/response"));
    r.case("enable fr", ENABLE, vars, &expected, EXACT);
    let (vars, expected) = (r.vars("setup/productCreate/variables"), r.cap("setup/productCreate/response"));
    r.case("productCreate", CREATE, vars, &expected, EXACT);
    let (vars, expected) = (r.vars("setupRead/variables"), r.cap("setupRead/response"));
    r.case("locales and translatable content", SETUP_READ, vars, &expected, EXACT);
    let (vars, expected) = (r.vars("invalidKeyRegister/variables"), r.cap("invalidKeyRegister/response"));
    r.case("a valid and an invalid key", REGISTER, vars, &expected, EXACT);
    let read = "query TranslationsRead($resourceId: ID!) {
      translatableResource(resourceId: $resourceId) { resourceId translations(locale: \"fr\") { key value locale outdated market { id } } }
    }";
    let (vars, expected) = (r.vars("downstreamRead/variables"), r.cap("downstreamRead/response"));
    r.case("only the valid translation was saved", read, vars, &expected, EXACT);
    delete_product(&mut r, "cleanup/productDelete");
    let disable = "mutation ShopLocaleDisable($locale: String!) { shopLocaleDisable(locale: $locale) { locale userErrors { field message } } }";
    let expected = r.cap("cleanup/shopLocaleDisable");
    r.case("disable fr", disable, json!({"locale": "fr"}), &expected, EXACT);
    r.results
}
