//! `catsync validate`: every bad configuration gets all its errors, positioned, with a hint, and exit 3.

use crate::support::Test;

#[test]
fn yaml_syntax_error() {
    Test::pipeline(
        r#"version: 1
name: shop
stages: {pim: [
"#,
    )
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:4:1: error: invalid YAML: while parsing a node, did not find expected node content
              = hint: a `[` or `{` is not closed, or a value is missing
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn wrong_indentation() {
    Test::edited(&[(r#"    files: [export.json]"#, r#"   files: [export.json]"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:9:4: error: invalid YAML: while parsing a block mapping, did not find expected key
              |
            9 |    files: [export.json]
              |    ^
              = hint: check the indentation: the keys of one map start in the same column, values after `: `
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
        );
}

#[test]
fn unknown_key_with_suggestion() {
    Test::edited(&[(r#"    files: [export.json]"#, r#"    fils: [export.json]"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:9:5: error: stage `pim`: unknown key `fils`
              |
            9 |     fils: [export.json]
              |     ^^^^
              = hint: did you mean `files`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
        );
}

#[test]
fn unknown_top_level_key() {
    Test::edited(&[(r#"parameters:"#, r#"paramters:"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:3:1: error: unknown key `paramters`
              |
            3 | paramters:
              | ^^^^^^^^^
              = hint: did you mean `parameters`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn wrong_type() {
    Test::edited(&[(
        r#"  deletions: disabled"#,
        r#"  deletions: disabled
  batch_size: ten"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:6:15: error: `batch_size` must be an integer, found a string
              |
            6 |   batch_size: ten
              |               ^^^
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn bad_enum_value() {
    Test::edited(&[(r#"export_status: visible"#, r#"export_status: visble"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:4:18: error: `visble` is not a valid value for `export_status`
              |
            4 |   export_status: visble
              |                  ^^^^^^
              = hint: did you mean `visible`? (one of `all`, `visible`, `visible_and_draft`, `visible_and_invisible`)
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
        );
}

#[test]
fn batch_size_zero() {
    Test::edited(&[(
        r#"  deletions: disabled"#,
        r#"  deletions: disabled
  batch_size: 0"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:6:15: error: `batch_size` must be at least 1, found 0
              |
            6 |   batch_size: 0
              |               ^
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn missing_version() {
    Test::edited(&[(
        r#"version: 1
"#,
        r#""#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:1:1: error: missing required key `version`
              |
            1 | name: shop
              | ^
              = hint: add `version: 1` at the top of the file
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn unsupported_version() {
    Test::edited(&[(r#"version: 1"#, r#"version: 2"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:1:10: error: `version` must be 1, found `2`
              |
            1 | version: 2
              |          ^
              = hint: this version of catsync reads `version: 1` pipelines
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn unknown_stage_input() {
    Test::edited(&[(r#"    inputs: [docs]"#, r#"    inputs: [dcos]"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:23:14: error: stage `store`: unknown input `dcos`
               |
            23 |     inputs: [dcos]
               |              ^^^^
               = hint: did you mean `docs`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn duplicate_stage_name() {
    Test::edited(&[(
        r#"  store:"#,
        r#"  pim:
    type: csv
    path: prices.csv
    key: sku
  store:"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:21:3: error: duplicate stage name `pim`
               |
            21 |   pim:
               |   ^^^
               = hint: `pim` is first defined at line 7; keep one of them
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn cycle() {
    Test::edited(&[(r#"    inputs: [pim]"#, r#"    inputs: [store]"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:12:5: error: stage `docs`: stages form a cycle: docs -> store -> docs
               |
            12 |     inputs: [store]
               |     ^^^^^^
               = hint: a pipeline is a DAG: remove one of these inputs
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn export_with_no_input() {
    Test::edited(&[(
        r#"    inputs: [docs]
"#,
        r#""#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:21:3: error: stage `store`: missing required key `inputs`
               |
            21 |   store:
               |   ^^^^^
               = hint: an export sends the documents of a `map` stage: add `inputs: [NAME_OF_MAP_STAGE]`
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn source_with_inputs() {
    Test::edited(&[(
        r#"    files: [export.json]"#,
        r#"    files: [export.json]
    inputs: [docs]"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:10:5: error: stage `pim`: a `saleslayer` source reads its own data and takes no `inputs`
               |
            10 |     inputs: [docs]
               |     ^^^^^^
               = hint: remove `inputs`; to combine sources use a `join` stage
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn template_syntax_error() {
    Test::edited(&[(r#""{{ product_name }}""#, r#""{{ product_name }""#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:14:14: error: stage `docs`: template does not compile: unexpected `}`, expected end of variable block
               |
            14 |       title: "{{ product_name }"
               |              ^^^^^^^^^^^^^^^^^^^
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn undefined_template_variable() {
    Test::edited(&[(r#"{{ product_name }}"#, r#"{{ prodct_name }}"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:14:14: error: stage `docs`: template uses unknown field `prodct_name`
               |
            14 |       title: "{{ prodct_name }}"
               |              ^^^^^^^^^^^^^^^^^^^
               = hint: did you mean `product_name`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn templates_follow_a_related_items_own_relations() {
    // Rendering follows `category.parent` (and further up); so does validation, field by field.
    Test::edited(&[(r#"{{ product_name }}"#, r#"{{ category.parent.parent.section_name }} {{ product_name }}"#)])
        .args(["validate", "p.yaml"])
        .run()
        .succeeds_with_code(0);
    Test::edited(&[(r#"{{ product_name }}"#, r#"{{ category.parent.secton_name }}"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:14:14: error: stage `docs`: template uses unknown field `category.parent.secton_name`
               |
            14 |       title: "{{ category.parent.secton_name }}"
               |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = hint: did you mean `section_name`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
        );
}

#[test]
fn missing_environment_variable() {
    Test::edited(&[(r#"    url: sandbox://shop"#, r#"    url: ${SHOPIFY_STORE}
    token: ${SHOPIFY_TOKEN}"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:24:10: error: stage `store`: environment variable `SHOPIFY_STORE` is not set
               |
            24 |     url: ${SHOPIFY_STORE}
               |          ^^^^^^^^^^^^^^^^
               = hint: set it (`export SHOPIFY_STORE=...`), give a default with `${SHOPIFY_STORE:-value}`, or select another environment with `--env`
            p.yaml:25:12: error: stage `store`: environment variable `SHOPIFY_TOKEN` is not set
               |
            25 |     token: ${SHOPIFY_TOKEN}
               |            ^^^^^^^^^^^^^^^^
               = hint: set it (`export SHOPIFY_TOKEN=...`), give a default with `${SHOPIFY_TOKEN:-value}`, or select another environment with `--env`
            1 of 1 file invalid: 2 errors, 0 warnings
            "#,
        );
}

#[test]
fn two_errors_in_one_file() {
    Test::edited(&[
        (r#"export_status: visible"#, r#"export_status: visble"#),
        (r#"    files: [export.json]"#, r#"    fils: [export.json]"#),
    ])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:4:18: error: `visble` is not a valid value for `export_status`
              |
            4 |   export_status: visble
              |                  ^^^^^^
              = hint: did you mean `visible`? (one of `all`, `visible`, `visible_and_draft`, `visible_and_invisible`)
            p.yaml:9:5: error: stage `pim`: unknown key `fils`
              |
            9 |     fils: [export.json]
              |     ^^^^
              = hint: did you mean `files`?
            1 of 1 file invalid: 2 errors, 0 warnings
            "#,
    );
}

#[test]
fn secret_written_in_clear() {
    Test::edited(&[(r#"    url: sandbox://shop"#, r#"    url: https://acme.myshopify.com
    token: shpat_0123456789abcdef"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:25:12: error: stage `store`: `token` must reference a secret, not contain it
               |
            25 |     token: shpat_0123456789abcdef
               |            ^^^^^^^^^^^^^^^^^^^^^^
               = hint: write `token: ${SHOPIFY_TOKEN}` and set that environment variable (or `${file:path}`); secrets are never stored in pipeline files
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
        );
}

#[test]
fn bad_status_mapping() {
    Test::edited(&[(r#"I: ARCHIVED"#, r#"I: ARCHIVE"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:16:70: error: stage `docs`: `ARCHIVE` is not a Shopify product status
               |
            16 |       status: { from: product_status, map: { V: ACTIVE, D: DRAFT, I: ARCHIVE } }
               |                                                                      ^^^^^^^
               = hint: did you mean `ARCHIVED`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn export_reads_a_source() {
    Test::edited(&[(r#"    inputs: [docs]"#, r#"    inputs: [pim]"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:23:14: error: stage `store`: a `shopify` export sends target documents, but `pim` produces a catalog
               |
            23 |     inputs: [pim]
               |              ^^^
               = hint: read from a `map` stage, which turns catalog items into target documents
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn unknown_field_reference() {
    Test::edited(&[(r#"      sku: "{{ format_sku }}""#, r#"      sku: { field: format_skux }"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:18:21: error: stage `docs`: unknown variant field `format_skux`
               |
            18 |       sku: { field: format_skux }
               |                     ^^^^^^^^^^^
               = hint: did you mean `format_sku`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
        );
}

#[test]
fn too_many_options() {
    Test::edited(&[(
        r#"options: { Color: "{{ color }}" }"#,
        r#"options: { Color: "{{ color }}", Size: a, Fit: b, Cut: c }"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:20:16: error: stage `docs`: `options` takes at most 3 entries
               |
            20 |       options: { Color: "{{ color }}", Size: a, Fit: b, Cut: c }
               |                ^
               = hint: Shopify products have at most 3 options
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn no_file_matches() {
    Test::edited(&[(r#"files: [export.json]"#, r#"files: [exports/*.json]"#)])
        .args(["validate", "p.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:9:13: error: stage `pim`: no file matches `exports/*.json`
              |
            9 |     files: [exports/*.json]
              |             ^^^^^^^^^^^^^^
              = hint: paths are relative to the pipeline file
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
        );
}

#[test]
fn duplicate_key() {
    Test::edited(&[(
        r#"    type: shopify
"#,
        r#"    type: shopify
    type: shopify
"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:23:5: error: duplicate key `type`
               |
            23 |     type: shopify
               |     ^^^^
               = hint: `type` is first defined at line 22; keep one of them
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn invalid_stage_name() {
    Test::edited(&[(r#"  docs:"#, r#"  2docs:"#)]).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:10:3: error: `2docs` is not a valid stage name
               |
            10 |   2docs:
               |   ^^^^^
               = hint: start with a letter; use letters, digits, `-` and `_`
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn unknown_environment() {
    Test::edited(&[]).args(["validate", "--env", "prod", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml: error: unknown environment `prod`
              = hint: this pipeline declares no `environments`
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn empty_file() {
    Test::pipeline(r#""#).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:1:1: error: the pipeline file is empty
              = hint: run `catsync init` for a commented starter pipeline
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn errors_in_two_files() {
    Test::edited(&[(r#"export_status: visible"#, r#"export_status: visble"#)])
        .file(
            "q.yaml",
            r#"version: 1
name: other
stages:
  pim:
    type: saleslayer
    files: [export.json]
  store:
    type: shopify
    inputs: [dcs]
    url: sandbox://x
"#,
        )
        .args(["validate", "p.yaml", "q.yaml"])
        .run()
        .fails(
            3,
            r#"
            p.yaml:4:18: error: `visble` is not a valid value for `export_status`
              |
            4 |   export_status: visble
              |                  ^^^^^^
              = hint: did you mean `visible`? (one of `all`, `visible`, `visible_and_draft`, `visible_and_invisible`)
            q.yaml:9:14: error: stage `store`: unknown input `dcs`
              |
            9 |     inputs: [dcs]
              |              ^^^
              = hint: the stages are `pim`, `store`
            2 of 2 files invalid: 2 errors, 0 warnings
            "#,
        );
}

#[test]
fn join_needs_a_key_field() {
    Test::pipeline(
        r#"version: 1
name: shop
stages:
  pim:
    type: saleslayer
    files: [export.json]
  prices:
    type: csv
    path: prices.csv
    key: sku
  priced:
    type: join
    inputs: [pim, prices]
  docs:
    type: map
    inputs: [priced]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
    variants:
      sku: "{{ format_sku }}"
      price: "{{ price | money }}"
      options: { Color: "{{ color }}" }
  store:
    type: shopify
    inputs: [docs]
    url: sandbox://shop
"#,
    )
    .file(
        "prices.csv",
        r#"sku,price,stock
A-1,10.00,3
"#,
    )
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:11:3: error: stage `priced`: a `join` needs exactly one of `variants_by` and `products_by`
               |
            11 |   priced:
               |   ^^^^^^
               = hint: for example `variants_by: format_sku` to add ERP columns to each variant with that SKU
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn csv_key_column_must_exist() {
    Test::pipeline(
        r#"version: 1
name: shop
stages:
  pim:
    type: saleslayer
    files: [export.json]
  prices:
    type: csv
    path: prices.csv
    key: skux
  priced:
    type: join
    inputs: [pim, prices]
    variants_by: format_sku
  docs:
    type: map
    inputs: [priced]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
    variants:
      sku: "{{ format_sku }}"
      price: "{{ price | money }}"
      options: { Color: "{{ color }}" }
  store:
    type: shopify
    inputs: [docs]
    url: sandbox://shop
"#,
    )
    .file(
        "prices.csv",
        r#"sku,price,stock
A-1,10.00,3
"#,
    )
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:10:10: error: stage `prices`: key column `skux` is not in `prices.csv`
               |
            10 |     key: skux
               |          ^^^^
               = hint: did you mean `sku`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn join_field_must_exist() {
    Test::pipeline(
        r#"version: 1
name: shop
stages:
  pim:
    type: saleslayer
    files: [export.json]
  prices:
    type: csv
    path: prices.csv
    key: sku
  priced:
    type: join
    inputs: [pim, prices]
    variants_by: format_skuu
  docs:
    type: map
    inputs: [priced]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
    variants:
      sku: "{{ format_sku }}"
      price: "{{ price | money }}"
      options: { Color: "{{ color }}" }
  store:
    type: shopify
    inputs: [docs]
    url: sandbox://shop
"#,
    )
    .file(
        "prices.csv",
        r#"sku,price,stock
A-1,10.00,3
"#,
    )
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:14:18: error: stage `priced`: `format_skuu` is not a variant field of the source
               |
            14 |     variants_by: format_skuu
               |                  ^^^^^^^^^^^
               = hint: did you mean `format_sku`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn filter_reads_a_catalog() {
    Test::pipeline(
        r#"version: 1
name: shop
stages:
  pim:
    type: saleslayer
    files: [export.json]
  prices:
    type: csv
    path: prices.csv
    key: sku
  priced:
    type: join
    inputs: [pim, prices]
    variants_by: format_sku
  cheap:
    type: filter
    inputs: [prices]
    where: "price < 5"
  docs:
    type: map
    inputs: [priced]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
    variants:
      sku: "{{ format_sku }}"
      price: "{{ price | money }}"
      options: { Color: "{{ color }}" }
  store:
    type: shopify
    inputs: [docs]
    url: sandbox://shop
"#,
    )
    .file(
        "prices.csv",
        r#"sku,price,stock
A-1,10.00,3
"#,
    )
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:17:14: error: stage `cheap`: a `filter` stage reads a catalog, but `prices` produces a table
               |
            17 |     inputs: [prices]
               |              ^^^^^^
               = hint: read from a `saleslayer` source or a `join`/`filter` of it
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn three_stage_cycle() {
    Test::pipeline(
        r#"version: 1
name: shop
stages:
  pim:
    type: saleslayer
    files: [export.json]
  prices:
    type: csv
    path: prices.csv
    key: sku
  priced:
    type: join
    inputs: [docs, prices]
    variants_by: format_sku
  in_stock:
    type: filter
    inputs: [priced]
    where: "stock > 0"
  docs:
    type: map
    inputs: [in_stock]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
    variants:
      sku: "{{ format_sku }}"
      price: "{{ price | money }}"
      options: { Color: "{{ color }}" }
  store:
    type: shopify
    inputs: [docs]
    url: sandbox://shop
"#,
    )
    .file(
        "prices.csv",
        r#"sku,price,stock
A-1,10.00,3
"#,
    )
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:13:5: error: stage `priced`: stages form a cycle: priced -> in_stock -> docs -> priced
               |
            13 |     inputs: [docs, prices]
               |     ^^^^^^
               = hint: a pipeline is a DAG: remove one of these inputs
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn filter_expression_unknown_field() {
    Test::pipeline(
        r#"version: 1
name: shop
stages:
  pim:
    type: saleslayer
    files: [export.json]
  prices:
    type: csv
    path: prices.csv
    key: sku
  priced:
    type: join
    inputs: [pim, prices]
    variants_by: format_sku
  in_stock:
    type: filter
    inputs: [priced]
    where: "stok > 0"
  docs:
    type: map
    inputs: [in_stock]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
    variants:
      sku: "{{ format_sku }}"
      price: "{{ price | money }}"
      options: { Color: "{{ color }}" }
  store:
    type: shopify
    inputs: [docs]
    url: sandbox://shop
"#,
    )
    .file(
        "prices.csv",
        r#"sku,price,stock
A-1,10.00,3
"#,
    )
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:18:12: error: stage `in_stock`: expression uses unknown field `stok`
               |
            18 |     where: "stok > 0"
               |            ^^^^^^^^^^
               = hint: did you mean `stock`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn bad_schedules_and_sync_windows() {
    // Every cron expression, time zone and duration is checked where it is written, all at once.
    Test::edited(&[(
        r#"  deletions: disabled"#,
        r#"  deletions: disabled
  schedule: "0 */2 * *"
  timezone: Europe/Madird
  sync_windows:
    - { kind: allow, schedule: "0 25 * * *", duration: 0h }
    - { kind: deny, schedule: "@daily", duration: 1h, timezone: Mars/Olympus }"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:6:13: error: `0 */2 * *` is not a cron expression: it has 4 fields, not 5
              |
            6 |   schedule: "0 */2 * *"
              |             ^^^^^^^^^^^
              = hint: five fields: minute hour day-of-month month day-of-week, e.g. `0 */2 * * *` (every two hours), `30 1 * * MON-FRI`, `@daily`
            p.yaml:7:13: error: `Europe/Madird` is not a time zone
              |
            7 |   timezone: Europe/Madird
              |             ^^^^^^^^^^^^^
              = hint: did you mean `Europe/Madrid`?
            p.yaml:9:32: error: `0 25 * * *` is not a cron expression: the hour field `25`: number out of bounds (allowed: 0-23)
              |
            9 |     - { kind: allow, schedule: "0 25 * * *", duration: 0h }
              |                                ^^^^^^^^^^^^
              = hint: five fields: minute hour day-of-month month day-of-week, e.g. `0 */2 * * *` (every two hours), `30 1 * * MON-FRI`, `@daily`
            p.yaml:9:56: error: a sync window of zero length never opens
              |
            9 |     - { kind: allow, schedule: "0 25 * * *", duration: 0h }
              |                                                        ^^
              = hint: write a number with a unit: `30m`, `6h`, `48h`
            p.yaml:10:65: error: `Mars/Olympus` is not a time zone
               |
            10 |     - { kind: deny, schedule: "@daily", duration: 1h, timezone: Mars/Olympus }
               |                                                                 ^^^^^^^^^^^^
               = hint: write an IANA time zone name such as `Europe/Madrid` or `America/New_York`, or `UTC`
            1 of 1 file invalid: 5 errors, 0 warnings
            "#,
    );
}

#[test]
fn a_sync_window_of_an_unknown_kind() {
    Test::edited(&[(
        r#"  deletions: disabled"#,
        r#"  deletions: disabled
  sync_windows:
    - { kind: sometimes, schedule: "0 2 * * *", duration: 1h }"#,
    )])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:7:15: error: `sometimes` is not a valid value for `kind`
              |
            7 |     - { kind: sometimes, schedule: "0 2 * * *", duration: 1h }
              |               ^^^^^^^^^
              = hint: use one of `allow`, `deny`
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}
