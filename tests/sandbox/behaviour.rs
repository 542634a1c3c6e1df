//! Store behaviour that sync correctness depends on: identifier upserts that never duplicate,
//! list fields that replace, handles, collections without upsert, reads with cursors and search,
//! translations with digests, tokens and versions, persistence, and Shopify's rejection of
//! invalid documents.

use catsync::sandbox::{digest, Sandbox, SandboxConfig};
use serde_json::{json, Value};

use super::{Client, UPSERT, VERSION};

fn upsert(client: &Client, handle: &str, input: Value) -> Value {
    let mut input = input;
    input["handle"] = json!(handle);
    let data = client.data(UPSERT, json!({"h": handle, "input": input}));
    let payload = data["productSet"].clone();
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload["product"].clone()
}

fn sized(values: &[&str]) -> Value {
    json!({
        "productOptions": [{"name": "Size", "values": values.iter().map(|v| json!({"name": v})).collect::<Vec<_>>()}],
        "variants": values.iter().map(|v| json!({"optionValues": [{"optionName": "Size", "name": v}], "sku": format!("SKU-{v}"), "price": "9.5"})).collect::<Vec<_>>(),
    })
}

#[test]
fn a_retried_product_set_with_the_same_identifier_never_duplicates() {
    let client = Client::new();
    let mut input = sized(&["S", "M"]);
    input["title"] = json!("Red shirt");
    let first = upsert(&client, "red-shirt", input.clone());
    // Retries, sequential and concurrent (as after a timeout), all land on the same product.
    for _ in 0..3 {
        assert_eq!(upsert(&client, "red-shirt", input.clone())["id"], first["id"]);
    }
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(upsert(&client, "red-shirt", input.clone())["id"], first["id"]));
        }
    });
    let store = client.sandbox.snapshot();
    assert_eq!(store.products.len(), 1, "one product, whatever the retries");
    let product = store.products.values().next().expect("product");
    assert_eq!(product.handle, "red-shirt");
    assert_eq!(product.variants.len(), 2);
    // The variant ids stay the same across identical upserts.
    assert_eq!(upsert(&client, "red-shirt", input)["variants"], first["variants"]);
}

#[test]
fn a_retried_create_without_identifier_duplicates_as_in_shopify() {
    let client = Client::new();
    let create = "mutation($input: ProductSetInput!) { productSet(input: $input) { product { handle } } }";
    let handles: Vec<Value> = (0..3)
        .map(|_| {
            client.data(create, json!({"input": {"title": "Blue shirt"}}))["productSet"]["product"]["handle"].clone()
        })
        .collect();
    assert_eq!(handles, vec![json!("blue-shirt"), json!("blue-shirt-1"), json!("blue-shirt-2")]);
}

#[test]
fn identifier_rules_are_enforced() {
    let client = Client::new();
    let doc = "mutation($id: ProductSetIdentifiers, $input: ProductSetInput!) { productSet(identifier: $id, input: $input) { product { id } userErrors { field message code } } }";
    let errors = |id: Value, input: Value| {
        client.data(doc, json!({"id": id, "input": input}))["productSet"]["userErrors"].clone()
    };
    assert_eq!(
        errors(json!({"handle": "a"}), json!({"title": "A"})),
        json!([{"field": ["input", "handle"], "message": "The input field corresponding to the identifier is required.", "code": "MISSING_FIELD_REQUIRED"}])
    );
    assert_eq!(errors(json!({"handle": "a"}), json!({"title": "A", "handle": "b"}))[0]["code"], "INPUT_MISMATCH");
    assert_eq!(errors(json!({"id": "gid://shopify/Product/1"}), json!({"title": "A"}))[0]["code"], "NOT_FOUND");
    assert_eq!(
        errors(json!({"handle": "a"}), json!({"title": "A", "handle": "a", "id": "gid://shopify/Product/1"}))[0]
            ["code"],
        "ID_NOT_ALLOWED"
    );
    assert_eq!(client.sandbox.snapshot().products.len(), 0);
}

#[test]
fn list_fields_replace() {
    let client = Client::new();
    let collection = |title: &str| {
        client.data(
            "mutation($input: CollectionInput!) { collectionCreate(input: $input) { collection { id } } }",
            json!({"input": {"title": title}}),
        )["collectionCreate"]["collection"]["id"]
            .clone()
    };
    let (summer, sale) = (collection("Summer"), collection("Sale"));
    let mut input = sized(&["S", "M", "L"]);
    input["title"] = json!("Shirt");
    input["tags"] = json!(["b", "a"]);
    input["collections"] = json!([summer, sale]);
    input["metafields"] = json!([
        {"namespace": "custom", "key": "material", "type": "single_line_text_field", "value": "cotton"},
        {"namespace": "custom", "key": "care", "type": "single_line_text_field", "value": "cold"},
    ]);
    input["files"] = json!([{"originalSource": "https://example.com/1.png", "alt": "one"}, {"originalSource": "https://example.com/2.png"}]);
    upsert(&client, "shirt", input.clone());
    let mut input = sized(&["M"]);
    input["title"] = json!("Shirt");
    input["collections"] = json!([sale]);
    input["metafields"] =
        json!([{"namespace": "custom", "key": "material", "type": "single_line_text_field", "value": "linen"}]);
    input["files"] = json!([{"originalSource": "https://example.com/2.png"}]);
    upsert(&client, "shirt", input);
    let read = "query($h: String!) { productByIdentifier(identifier: {handle: $h}) {
        tags variants(first: 10) { nodes { title sku } } options { name values }
        collections(first: 10) { nodes { title } } metafields(first: 10) { nodes { key value } }
        media(first: 10) { nodes { ... on MediaImage { image { url } } } }
    } }";
    let p = client.data(read, json!({"h": "shirt"}))["productByIdentifier"].clone();
    assert_eq!(p["tags"], json!(["a", "b"]), "tags not sent are kept; sent tags are sorted");
    assert_eq!(p["variants"]["nodes"], json!([{"title": "M", "sku": "SKU-M"}]));
    assert_eq!(p["options"], json!([{"name": "Size", "values": ["M"]}]));
    assert_eq!(p["collections"]["nodes"], json!([{"title": "Sale"}]));
    assert_eq!(p["metafields"]["nodes"], json!([{"key": "material", "value": "linen"}]));
    // A file without id is a new media (served from the CDN, its name taken by the old one).
    let media = p["media"]["nodes"].as_array().unwrap();
    let url = media[0]["image"]["url"].as_str().unwrap();
    assert_eq!(media.len(), 1);
    assert!(url.starts_with("https://cdn.shopify.com/s/files/1/") && url.contains("/files/2_"), "{url}");
}

#[test]
fn explicit_handles_must_be_free_and_are_normalised() {
    let client = Client::new();
    upsert(&client, "taken", json!({"title": "First"}));
    let doc = "mutation($input: ProductSetInput!) { productSet(input: $input) { product { handle } userErrors { field message code } } }";
    let data = client.data(doc, json!({"input": {"title": "Second", "handle": "  TAKEN "}}));
    assert_eq!(
        data["productSet"]["userErrors"],
        json!([{"field": ["input", "handle"], "message": "Handle '  TAKEN ' already in use. Please provide a new handle.", "code": "HANDLE_NOT_UNIQUE"}])
    );
    let data = client.data(doc, json!({"input": {"title": "Third", "handle": "Ünïcode Thing / 2"}}));
    assert_eq!(data["productSet"]["product"]["handle"], "unicode-thing-2");
}

#[test]
fn collections_have_no_upsert_but_can_be_looked_up_by_handle() {
    let client = Client::new();
    let create = "mutation($input: CollectionInput!) { collectionCreate(input: $input) { collection { id handle } userErrors { field message } } }";
    let first =
        client.data(create, json!({"input": {"title": "Shoes", "handle": "shoes"}}))["collectionCreate"].clone();
    assert_eq!(first["userErrors"], json!([]));
    let again =
        client.data(create, json!({"input": {"title": "Shoes", "handle": "shoes"}}))["collectionCreate"].clone();
    assert_eq!(again["collection"], Value::Null);
    assert_eq!(again["userErrors"][0]["field"], json!(["handle"]));
    let lookup = "query($h: String!) { collectionByIdentifier(identifier: {handle: $h}) { id title } }";
    assert_eq!(client.data(lookup, json!({"h": "shoes"}))["collectionByIdentifier"]["id"], first["collection"]["id"]);
    assert_eq!(client.data(lookup, json!({"h": "boots"}))["collectionByIdentifier"], Value::Null);
    let update = "mutation($input: CollectionInput!) { collectionUpdate(input: $input) { collection { title handle } userErrors { field message } } }";
    let updated = client.data(update, json!({"input": {"id": first["collection"]["id"], "title": "All shoes"}}))
        ["collectionUpdate"]
        .clone();
    assert_eq!(updated, json!({"collection": {"title": "All shoes", "handle": "shoes"}, "userErrors": []}));
    let delete = "mutation($id: ID!) { collectionDelete(input: {id: $id}) { deletedCollectionId } }";
    client.data(delete, json!({"id": first["collection"]["id"]}));
    assert_eq!(client.data(lookup, json!({"h": "shoes"}))["collectionByIdentifier"], Value::Null);
}

#[test]
fn products_page_with_cursors_and_filter_with_search_syntax() {
    let client = Client::new();
    for (i, status) in ["ACTIVE", "DRAFT", "ACTIVE", "ARCHIVED", "ACTIVE"].iter().enumerate() {
        upsert(
            &client,
            &format!("p{i}"),
            json!({"title": format!("Product {i}"), "status": status, "tags": [format!("t{}", i % 2)]}),
        );
    }
    let page = "query($after: String, $q: String) { products(first: 2, after: $after, query: $q) {
        edges { cursor node { handle } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut handles = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = client.data(page, json!({"after": after}));
        let conn = &data["products"];
        handles.extend(conn["edges"].as_array().expect("edges").iter().map(|e| e["node"]["handle"].clone()));
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(handles, vec!["p0", "p1", "p2", "p3", "p4"]);
    let count = |q: &str| {
        client.data("query($q: String) { productsCount(query: $q) { count } }", json!({"q": q}))["productsCount"]
            ["count"]
            .clone()
    };
    assert_eq!(count("status:active"), 3);
    assert_eq!(count("status:draft,archived"), 2);
    assert_eq!(count("tag:t0 AND status:active"), 3);
    assert_eq!(count("handle:p1 OR handle:p2"), 2);
    assert_eq!(count("-status:active"), 2);
    assert_eq!(count("title:'Product 3'"), 1);
    let missing = client.post("{ products { nodes { id } } }", json!({}));
    assert_eq!(missing["errors"][0]["message"], "you must provide one of first or last");
}

#[test]
fn translations_need_the_digest_of_the_current_value() {
    let client = Client::new();
    let product = upsert(&client, "hat", json!({"title": "Hat", "descriptionHtml": "<p>Warm</p>"}));
    client.data("mutation { shopLocaleEnable(locale: \"es\") { shopLocale { locale } } }", json!({}));
    let content = client.data(
        "query($id: ID!) { translatableResource(resourceId: $id) { translatableContent { key value digest } } }",
        json!({"id": product["id"]}),
    );
    let title = content["translatableResource"]["translatableContent"][0].clone();
    assert_eq!(title["key"], "title");
    assert_eq!(title["digest"], digest("Hat"), "the digest is the sha256 hex of the value");
    let register =
        "mutation($id: ID!, $t: [TranslationInput!]!) { translationsRegister(resourceId: $id, translations: $t) {
        translations { key value locale outdated } userErrors { field message code } } }";
    let t = |value: &str, d: &str| json!([{"locale": "es", "key": "title", "value": value, "translatableContentDigest": d}]);
    let ok = client.data(register, json!({"id": product["id"], "t": t("Sombrero", &digest("Hat"))}));
    assert_eq!(
        ok["translationsRegister"]["translations"],
        json!([{"key": "title", "value": "Sombrero", "locale": "es", "outdated": false}])
    );
    let bad = client.data(register, json!({"id": product["id"], "t": t("Gorro", &digest("Cap"))}));
    assert_eq!(bad["translationsRegister"]["userErrors"][0]["code"], "INVALID_TRANSLATABLE_CONTENT");
    // Changing the source makes the translation outdated.
    upsert(&client, "hat", json!({"title": "Warm hat"}));
    let read = "query($id: ID!) { product(id: $id) { translations(locale: \"es\") { value outdated } } }";
    assert_eq!(
        client.data(read, json!({"id": product["id"]}))["product"]["translations"],
        json!([{"value": "Sombrero", "outdated": true}])
    );
    let unknown = client.data(register, json!({"id": "gid://shopify/Product/1", "t": t("x", "y")}));
    assert_eq!(unknown["translationsRegister"]["userErrors"][0]["code"], "RESOURCE_NOT_FOUND");
}

#[test]
fn async_product_set_completes_through_product_operation() {
    let client = Client::new();
    let doc = "mutation($input: ProductSetInput!) { productSet(input: $input, synchronous: false) {
        product { id } productSetOperation { id status } userErrors { field message } } }";
    let data = client.data(doc, json!({"input": {"title": "Later"}}));
    assert_eq!(data["productSet"]["product"], Value::Null);
    assert_eq!(data["productSet"]["productSetOperation"]["status"], "CREATED");
    let id = data["productSet"]["productSetOperation"]["id"].clone();
    let read = "query($id: ID!) { productOperation(id: $id) { status product { handle } } }";
    let started = std::time::Instant::now();
    loop {
        let op = client.data(read, json!({"id": id}))["productOperation"].clone();
        if op["status"] == "COMPLETE" {
            assert_eq!(op["product"]["handle"], "later");
            break;
        }
        assert!(started.elapsed().as_secs() < 5, "the operation never completed: {op}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn tokens_and_versions_are_checked_like_shopify() {
    let client = Client::start(SandboxConfig { tokens: vec!["secret".into()], ..SandboxConfig::default() });
    let post = |token: Option<&str>, version: &str| {
        let mut req = client.http.post(client.sandbox.graphql_url(version)).body(r#"{"query":"{ shop { name } }"}"#);
        if let Some(t) = token {
            req = req.header("X-Shopify-Access-Token", t);
        }
        let resp = req.send().expect("request");
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    };
    let (status, body) = post(None, VERSION);
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#)
    );
    assert_eq!(post(Some("wrong"), VERSION).0, 401);
    assert_eq!(post(Some("secret"), VERSION).0, 200);
    assert_eq!(post(Some("secret"), "2025-01").0, 200);
    assert_eq!(post(Some("secret"), "1999-01").0, 404);
    let missing_query = client
        .http
        .post(client.sandbox.graphql_url(VERSION))
        .header("X-Shopify-Access-Token", "secret")
        .body("{}")
        .send()
        .expect("request");
    assert_eq!(missing_query.status().as_u16(), 400);
}

#[test]
fn invalid_documents_are_rejected_with_shopify_errors() {
    let client = Client::new();
    let body = client.post("query Broken {\n  shop {\n    id\n", json!({}));
    assert_eq!(
        body,
        json!({"errors": [{"message": "syntax error, unexpected end of file at [3, 5]", "locations": [{"line": 3, "column": 5}], "extensions": {"code": "PARSE_ERROR"}}]})
    );
    let body = client.post("query Q {\n  definitelyNotAShopifyQueryRoot {\n    id\n  }\n}\n", json!({}));
    assert_eq!(
        body,
        json!({"errors": [{"message": "Field 'definitelyNotAShopifyQueryRoot' doesn't exist on type 'QueryRoot'", "locations": [{"line": 2, "column": 3}], "path": ["query Q", "definitelyNotAShopifyQueryRoot"], "extensions": {"code": "undefinedField", "typeName": "QueryRoot", "fieldName": "definitelyNotAShopifyQueryRoot"}}]})
    );
    let body = client
        .post("mutation M($p: ProductCreateInput!) {\n  productCreate(product: $p) { product { id } }\n}", json!({}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_VARIABLE");
    assert!(body.get("data").is_none() && body.get("extensions").is_none(), "rejected before execution: {body}");
    let body = client.post("mutation {\n  productCreate {\n    product { id }\n  }\n}\n", json!({}));
    assert_eq!(
        body["errors"],
        json!([{"message": "productCreate must include exactly one of the following arguments: input, product.", "locations": [{"line": 2, "column": 3}], "path": ["productCreate"], "extensions": {"code": "INVALID_FIELD_ARGUMENTS"}}])
    );
    assert_eq!(body["data"], json!({"productCreate": null}));
    let codes: Vec<_> = client.sandbox.requests().into_iter().map(|r| (r.kind, r.error_code)).collect();
    let expected = [
        ("invalid", "PARSE_ERROR"),
        ("invalid", "undefinedField"),
        ("mutation", "INVALID_VARIABLE"),
        ("mutation", "INVALID_FIELD_ARGUMENTS"),
    ];
    assert_eq!(codes, expected.map(|(k, c)| (k.to_string(), Some(c.to_string()))));
}

#[test]
fn the_store_persists_to_its_data_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store.json");
    let config = SandboxConfig { data: Some(data.clone()), ..SandboxConfig::default() };
    {
        let client = Client::start(config.clone());
        upsert(&client, "kept", json!({"title": "Kept"}));
        client.sandbox.shutdown();
    }
    let client = Client::start(config);
    let found = client.data("{ productByIdentifier(identifier: {handle: \"kept\"}) { title } }", json!({}));
    assert_eq!(found["productByIdentifier"]["title"], "Kept");
    drop(client); // one sandbox at a time writes a data file
    std::fs::write(&data, "not json").expect("write");
    let err = Sandbox::start(SandboxConfig { data: Some(data), ..SandboxConfig::default() })
        .err()
        .expect("a broken data file is refused");
    assert!(err.to_string().contains("is not a sandbox store file"), "{err}");
}

#[test]
fn deleting_a_product_removes_it_everywhere() {
    let client = Client::new();
    let product = upsert(&client, "gone", json!({"title": "Gone"}));
    let collection = client.data(
        "mutation($p: [ID!]) { collectionCreate(input: {title: \"C\", products: $p}) { collection { id } } }",
        json!({"p": [product["id"]]}),
    )["collectionCreate"]["collection"]["id"]
        .clone();
    let deleted = client.data(
        "mutation($id: ID!) { productDelete(input: {id: $id}) { deletedProductId } }",
        json!({"id": product["id"]}),
    );
    assert_eq!(deleted["productDelete"]["deletedProductId"], product["id"]);
    let read = client.data(
        "query($p: ID!, $c: ID!) { product(id: $p) { id } collection(id: $c) { productsCount { count } } }",
        json!({"p": product["id"], "c": collection}),
    );
    assert_eq!(read, json!({"product": null, "collection": {"productsCount": {"count": 0}}}));
}

#[test]
fn introspection_describes_the_subset() {
    let client = Client::new();
    let data = client.data(
        "{ __schema { queryType { name } mutationType { name } } __type(name: \"ProductSetUserErrorCode\") { enumValues { name } } shop { name } }",
        json!({}),
    );
    assert_eq!(data["__schema"], json!({"queryType": {"name": "QueryRoot"}, "mutationType": {"name": "Mutation"}}));
    let codes: Vec<&str> =
        data["__type"]["enumValues"].as_array().expect("values").iter().filter_map(|v| v["name"].as_str()).collect();
    assert!(codes.contains(&"HANDLE_NOT_UNIQUE") && codes.contains(&"ID_NOT_ALLOWED"), "{codes:?}");
    assert_eq!(data["shop"]["name"], "catsync-sandbox");
    let bad = client.post("{ __schema { nope } }", json!({}));
    assert!(bad["errors"].is_array() && bad.get("data").is_none(), "{bad}");
}
