//! What reading a store back needs of the sandbox: `nodes(ids:)` by GID (deleted items are null,
//! at most 250 ids, as Shopify's input arrays), `productVariants(query:)` finding variants by SKU
//! across products, and the search syntax's quoted values and backslash escapes.

use serde_json::{json, Value};

use super::{Client, UPSERT};

fn product(client: &Client, handle: &str, skus: &[&str]) -> String {
    let input = json!({
        "handle": handle,
        "title": handle,
        "productOptions": [{"name": "Size", "values": skus.iter().map(|s| json!({"name": s})).collect::<Vec<_>>()}],
        "variants": skus.iter().map(|s| json!({"optionValues": [{"optionName": "Size", "name": s}], "sku": s, "price": "5"})).collect::<Vec<_>>(),
    });
    let data = client.data(UPSERT, json!({"h": handle, "input": input}));
    assert_eq!(data["productSet"]["userErrors"], json!([]), "{data}");
    data["productSet"]["product"]["id"].as_str().expect("id").to_string()
}

const FIND_VARIANTS: &str = "query($q: String!) {
  productVariants(first: 10, query: $q) { nodes { sku product { handle } } pageInfo { hasNextPage } }
}";

fn found(client: &Client, query: &str) -> Vec<(String, String)> {
    let data = client.data(FIND_VARIANTS, json!({"q": query}));
    data["productVariants"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (n["sku"].as_str().unwrap_or("").to_string(), n["product"]["handle"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn product_variants_are_found_by_sku_across_products() {
    let client = Client::new();
    product(&client, "shirt", &["SH-S", "SH-M"]);
    product(&client, "odd", &["A B\"C", "X:Y"]);
    let pair = |sku: &str, handle: &str| (sku.to_string(), handle.to_string());
    assert_eq!(found(&client, "sku:SH-M"), [pair("SH-M", "shirt")]);
    assert_eq!(found(&client, "sku:SH-M OR sku:X\\:Y"), [pair("SH-M", "shirt"), pair("X:Y", "odd")]);
    assert_eq!(found(&client, r#"sku:"A B\"C""#), [pair("A B\"C", "odd")]);
    assert_eq!(found(&client, "sku:NOPE"), []);
    assert_eq!(found(&client, "product_status:active sku:SH-S").len(), 1);
}

#[test]
fn nodes_reads_by_gid_with_null_for_what_is_gone_and_at_most_250_ids() {
    let client = Client::new();
    let a = product(&client, "a", &["A1"]);
    let b = product(&client, "b", &["B1"]);
    let id = b.rsplit('/').next().unwrap().parse::<u64>().unwrap();
    client.sandbox.with_store(|s| assert!(s.delete_product(id)));
    let query = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Product { id handle } } }";
    let data = client.data(query, json!({"ids": [a, b]}));
    assert_eq!(data["nodes"], json!([{"id": a, "handle": "a"}, null]));

    let ids: Vec<Value> = (0..251).map(|i| json!(format!("gid://shopify/Product/{i}"))).collect();
    let body = client.post(query, json!({"ids": ids}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "MAX_INPUT_SIZE_EXCEEDED", "{body}");
    assert_eq!(body["errors"][0]["message"], "The input array size of 251 is greater than the maximum allowed of 250.");
}

const RUN_QUERY: &str = "mutation($q: String!) {
  bulkOperationRunQuery(query: $q) { bulkOperation { id status type } userErrors { field message code } }
}";
const STATUS: &str = "query($id: ID!) { bulkOperation(id: $id) { status type objectCount rootObjectCount url } }";

/// Runs a bulk query to its end; its result lines.
fn bulk_query(client: &Client, query: &str) -> (Value, Vec<Value>) {
    let data = client.data(RUN_QUERY, json!({"q": query}));
    let payload = &data["bulkOperationRunQuery"];
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    assert_eq!(payload["bulkOperation"]["type"], "QUERY");
    let id = payload["bulkOperation"]["id"].clone();
    let started = std::time::Instant::now();
    let op = loop {
        let op = client.data(STATUS, json!({"id": id}))["bulkOperation"].clone();
        if op["status"] == "COMPLETED" {
            break op;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{op}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let text = client.http.get(op["url"].as_str().expect("url")).send().expect("download").text().expect("text");
    (op, text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect())
}

#[test]
fn a_bulk_query_writes_a_line_per_node_and_nested_nodes_name_their_parent() {
    let client = Client::new();
    let shirt = product(&client, "shirt", &["SH-S", "SH-M"]);
    let mug = product(&client, "mug", &["MUG"]);
    let create = "mutation($input: CollectionInput!) { collectionCreate(input: $input) { collection { id } } }";
    let collection = client.data(create, json!({"input": {"title": "Tops", "handle": "tops", "products": [shirt]}}))
        ["collectionCreate"]["collection"]["id"]
        .clone();
    let query = "{ products { edges { node { id handle seo { title } variants { edges { node { id sku } } } collections { nodes { id handle } } } } } }";
    let (op, lines) = bulk_query(&client, query);
    let variant = |sku: &str| {
        client.sandbox.inspect(|s| {
            s.products
                .values()
                .flat_map(|p| &p.variants)
                .find(|v| v.sku.as_deref() == Some(sku))
                .map(|v| v.gid())
                .unwrap()
        })
    };
    assert_eq!(
        lines,
        [
            json!({"id": shirt, "handle": "shirt", "seo": {"title": null}}),
            json!({"id": variant("SH-S"), "sku": "SH-S", "__parentId": shirt}),
            json!({"id": variant("SH-M"), "sku": "SH-M", "__parentId": shirt}),
            json!({"id": collection, "handle": "tops", "__parentId": shirt}),
            json!({"id": mug, "handle": "mug", "seo": {"title": null}}),
            json!({"id": variant("MUG"), "sku": "MUG", "__parentId": mug}),
        ]
    );
    assert_eq!((op["objectCount"].clone(), op["rootObjectCount"].clone()), (json!("6"), json!("2")));
    let current = client.data("{ currentBulkOperation(type: QUERY) { id type } }", json!({}));
    assert_eq!(current["currentBulkOperation"]["type"], "QUERY");
}

#[test]
fn bulk_queries_outside_shopifys_limits_are_refused() {
    let client = Client::new();
    let refused = |query: &str| {
        let data = client.data(RUN_QUERY, json!({"q": query}));
        let errors = data["bulkOperationRunQuery"]["userErrors"].clone();
        assert_eq!(errors[0]["code"], "INVALID", "{query}: {errors}");
        errors[0]["message"].as_str().unwrap_or_default().to_string()
    };
    assert!(refused(r#"{ nodes(ids: ["gid://shopify/Product/1"]) { id } }"#).contains("`node` and `nodes`"));
    assert!(refused("{ shop { id } }").contains("at least one connection"));
    assert!(refused(
        "{ collections { nodes { id products { nodes { id variants { nodes { id metafields { nodes { id } } } } } } } } }"
    )
    .contains("nesting depth greater than 2"));
    let six = "{ products { nodes { id variants { nodes { id metafields { nodes { id } } } } collections { nodes { id } } metafields { nodes { id } } media { nodes { id } } } } }";
    assert!(refused(six).contains("more than 5 connections"), "{six}");
    assert!(refused("{ products { nodes { id unknownField } } }").contains("unknownField"));
}
