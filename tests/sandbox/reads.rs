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
