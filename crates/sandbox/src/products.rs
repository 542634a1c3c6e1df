//! Product mutations: `productSet` (identifier upserts, list fields that replace, options and
//! variants, async operations), `productCreate`, `productUpdate` and `productDelete`, with
//! Shopify's user errors (field paths, messages and codes as recorded in the captures).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::execute::{Args, Exec, FieldResult, Followup, Obj, Resolved};
use super::handles::{self, MAX_HANDLE};
use super::metafields;
use super::store::{id_of, now, Media, OptionValue, Product, ProductOperation, ProductOption, Store, UserErr, Variant};

/// The longest title, vendor and product type Shopify accepts.
const MAX_TEXT: usize = 255;
/// Shopify's limit of options per product.
const MAX_OPTIONS: usize = 3;

/// Which mutation is applying input (they word and place their errors differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Set,
    Create,
    Update,
}

/// What applying a `productSet` input did.
#[derive(Debug, Clone, PartialEq)]
pub struct SetOutcome {
    /// The product to return (the created/updated one, or the untouched target on errors).
    pub product: Option<u64>,
    pub errors: Vec<UserErr>,
}

pub fn product_set(exec: &mut Exec<'_>, store: &mut Store, args: &Args<'_>) -> FieldResult {
    let input = args.get("input").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let identifier = args.get("identifier").cloned();
    if !exec.bulk && !args.bool("synchronous").unwrap_or(true) {
        if let Some(errors) = identifier_errors(identifier.as_ref(), &input) {
            return Ok(set_payload(None, None, &errors));
        }
        let id = store.alloc_id();
        store.product_operations.insert(
            id,
            ProductOperation { id, status: "CREATED".to_string(), product_id: None, user_errors: Vec::new() },
        );
        exec.followups.push(Followup::ProductOperation { operation: id, identifier, input });
        return Ok(set_payload(None, Some(id), &[]));
    }
    let outcome = apply_product_set(store, identifier.as_ref(), &input);
    Ok(set_payload(outcome.product, None, &outcome.errors))
}

fn set_payload(product: Option<u64>, operation: Option<u64>, errors: &[UserErr]) -> Resolved {
    Resolved::fields(
        "ProductSetPayload",
        vec![
            ("product", Resolved::opt_obj(product.map(Obj::Product))),
            ("productSetOperation", Resolved::opt_obj(operation.map(Obj::ProductSetOperation))),
            ("userErrors", Resolved::user_errors("ProductSetUserError", errors)),
        ],
    )
}

/// Errors about how the target is identified, checked before anything else.
fn identifier_errors(identifier: Option<&Value>, input: &Value) -> Option<Vec<UserErr>> {
    let ident = identifier.filter(|v| !v.is_null())?;
    if input.get("id").is_some_and(|v| !v.is_null()) {
        return Some(vec![
            UserErr::new(&["input"], "The id field is not allowed if identifier is provided.").code("ID_NOT_ALLOWED")
        ]);
    }
    let id = ident.get("id").and_then(Value::as_str);
    let handle = ident.get("handle").and_then(Value::as_str);
    match (id, handle) {
        (None, None) => {
            Some(vec![UserErr::new(&["identifier"], "Identifier must include one of: id, handle, customId.")
                .code("INVALID_INPUT")])
        }
        (None, Some(h)) => match input.get("handle").and_then(Value::as_str) {
            None => Some(vec![UserErr::new(
                &["input", "handle"],
                "The input field corresponding to the identifier is required.",
            )
            .code("MISSING_FIELD_REQUIRED")]),
            Some(given) if given != h => Some(vec![UserErr::new(
                &["input", "handle"],
                "The identifier value does not match the value of the corresponding field in the input.",
            )
            .code("INPUT_MISMATCH")]),
            Some(_) => None,
        },
        _ => None,
    }
}

/// Applies a `productSet` input: resolves the target (identifier or `input.id`), validates
/// everything, and commits only when there are no user errors.
pub fn apply_product_set(store: &mut Store, identifier: Option<&Value>, input: &Value) -> SetOutcome {
    if let Some(errors) = identifier_errors(identifier, input) {
        return SetOutcome { product: None, errors };
    }
    let empty = Map::new();
    let input = input.as_object().unwrap_or(&empty);
    let ident = identifier.filter(|v| !v.is_null());
    let target = if let Some(ident) = ident {
        if let Some(id) = ident.get("id").and_then(Value::as_str) {
            match id_of(id, "Product").filter(|n| store.products.contains_key(n)) {
                Some(n) => Some(n),
                None => {
                    return SetOutcome {
                        product: None,
                        errors: vec![UserErr::new(
                            &["identifier", "id"],
                            "Resource matching the identifier was not found.",
                        )
                        .code("NOT_FOUND")],
                    }
                }
            }
        } else {
            let handle = ident.get("handle").and_then(Value::as_str).unwrap_or_default();
            store.product_by_handle(handle).map(|p| p.id)
        }
    } else if let Some(id) = input.get("id").and_then(Value::as_str) {
        match id_of(id, "Product").filter(|n| store.products.contains_key(n)) {
            Some(n) => Some(n),
            None => {
                return SetOutcome {
                    product: None,
                    errors: vec![
                        UserErr::new(&["input", "id"], "Product does not exist").code("PRODUCT_DOES_NOT_EXIST")
                    ],
                }
            }
        }
    } else {
        None
    };
    let mut errors = Vec::new();
    let mut draft = Draft::start(store, target, Mode::Set);
    draft.scalars(store, input, &mut errors);
    draft.options_and_variants(store, input, &mut errors);
    if let Some(list) = input.get("metafields").and_then(Value::as_array) {
        draft.product.metafields =
            metafields::apply(store, &draft.product.metafields, list, true, &["input", "metafields"], &mut errors);
    }
    let files = input.get("files").and_then(Value::as_array).map(|list| (list, draft.files(store, list, &mut errors)));
    if errors.is_empty() {
        // Variants were built in input order (an invalid one is an error, and nothing commits).
        let variants = input.get("variants").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        draft.variant_files(variants, files.as_ref().map(|(l, ids)| (l.as_slice(), ids.as_slice())), &mut errors);
    }
    let collections = input
        .get("collections")
        .and_then(Value::as_array)
        .map(|list| collection_ids(store, list, &["input", "collections"], &mut errors));
    if !errors.is_empty() {
        return SetOutcome { product: target, errors };
    }
    let id = draft.commit(store);
    if let Some(wanted) = collections {
        set_memberships(store, id, &wanted);
    }
    SetOutcome { product: Some(id), errors }
}

pub fn product_create(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let Some(input) = args.get("product").and_then(Value::as_object) else {
        return Err(super::execute::FieldError::new(
            "productCreate must include exactly one of the following arguments: input, product.",
        )
        .code("INVALID_FIELD_ARGUMENTS"));
    };
    let mut errors = Vec::new();
    let mut draft = Draft::start(store, None, Mode::Create);
    draft.scalars(store, input, &mut errors);
    match input.get("productOptions").and_then(Value::as_array).filter(|o| !o.is_empty()) {
        Some(options) => draft.create_options(store, options, &mut errors),
        None => draft.default_variant(store),
    }
    if let Some(list) = input.get("metafields").and_then(Value::as_array) {
        draft.product.metafields = metafields::apply(store, &[], list, false, &["metafields"], &mut errors);
    }
    let joins = input
        .get("collectionsToJoin")
        .and_then(Value::as_array)
        .map(|l| collection_ids(store, l, &["collectionsToJoin"], &mut errors));
    let payload = |product: Option<u64>, errors: &[UserErr]| {
        Resolved::fields(
            "ProductCreatePayload",
            vec![
                ("product", Resolved::opt_obj(product.map(Obj::Product))),
                ("shop", Resolved::obj(Obj::Shop)),
                ("userErrors", Resolved::user_errors("UserError", errors)),
            ],
        )
    };
    if !errors.is_empty() {
        return Ok(payload(None, &errors));
    }
    let id = draft.commit(store);
    for c in joins.unwrap_or_default() {
        join(store, id, c);
    }
    Ok(payload(Some(id), &[]))
}

pub fn product_update(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let Some(input) = args.get("product").and_then(Value::as_object) else {
        return Err(super::execute::FieldError::new(
            "productUpdate must include exactly one of the following arguments: input, product.",
        )
        .code("INVALID_FIELD_ARGUMENTS"));
    };
    let payload = |product: Option<u64>, errors: &[UserErr]| {
        Resolved::fields(
            "ProductUpdatePayload",
            vec![
                ("product", Resolved::opt_obj(product.map(Obj::Product))),
                ("userErrors", Resolved::user_errors("UserError", errors)),
            ],
        )
    };
    let target = input
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id_of(id, "Product"))
        .filter(|n| store.products.contains_key(n));
    let Some(target) = target else {
        return Ok(payload(None, &[UserErr::new(&["id"], "Product does not exist")]));
    };
    let mut errors = Vec::new();
    let mut draft = Draft::start(store, Some(target), Mode::Update);
    draft.scalars(store, input, &mut errors);
    if let Some(list) = input.get("metafields").and_then(Value::as_array) {
        draft.product.metafields =
            metafields::apply(store, &draft.product.metafields, list, false, &["metafields"], &mut errors);
    }
    let joins = input
        .get("collectionsToJoin")
        .and_then(Value::as_array)
        .map(|l| collection_ids(store, l, &["collectionsToJoin"], &mut errors))
        .unwrap_or_default();
    let leaves = input
        .get("collectionsToLeave")
        .and_then(Value::as_array)
        .map(|l| collection_ids(store, l, &["collectionsToLeave"], &mut errors))
        .unwrap_or_default();
    if !errors.is_empty() {
        return Ok(payload(Some(target), &errors));
    }
    let id = draft.commit(store);
    for c in joins {
        join(store, id, c);
    }
    for c in leaves {
        if let Some(col) = store.collections.get_mut(&c) {
            col.products.retain(|p| *p != id);
        }
    }
    Ok(payload(Some(id), &[]))
}

pub fn product_delete(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let id = args.get("input").and_then(|i| i.get("id")).and_then(Value::as_str).unwrap_or_default().to_string();
    let deleted = id_of(&id, "Product").filter(|n| store.delete_product(*n)).is_some();
    let errors = if deleted { Vec::new() } else { vec![UserErr::new(&["id"], "Product does not exist")] };
    Ok(Resolved::fields(
        "ProductDeletePayload",
        vec![
            ("deletedProductId", if deleted { Resolved::str(id) } else { Resolved::Null }),
            ("shop", Resolved::obj(Obj::Shop)),
            ("userErrors", Resolved::user_errors("UserError", &errors)),
        ],
    ))
}

/// Completes an asynchronous `productSet` operation (called by the server after a delay), or
/// fails it with `JOB_ERROR`.
pub fn complete_operation(
    store: &mut Store,
    operation: u64,
    identifier: Option<&Value>,
    input: &Value,
    job_error: bool,
) {
    let outcome = if job_error {
        SetOutcome {
            product: None,
            errors: vec![UserErr::global("Error processing request in the background job.").code("JOB_ERROR")],
        }
    } else {
        apply_product_set(store, identifier, input)
    };
    if let Some(op) = store.product_operations.get_mut(&operation) {
        op.status = "COMPLETE".to_string();
        op.product_id = if outcome.errors.is_empty() { outcome.product } else { None };
        op.user_errors = outcome.errors;
    }
}

/// The product being built by a mutation; committed only when valid.
struct Draft {
    product: Product,
    existing: bool,
    mode: Mode,
}

impl Draft {
    fn start(store: &mut Store, target: Option<u64>, mode: Mode) -> Draft {
        match target.and_then(|id| store.products.get(&id)) {
            Some(p) => Draft { product: p.clone(), existing: true, mode },
            None => {
                let t = now();
                let product = Product {
                    id: store.alloc_id(),
                    title: String::new(),
                    handle: String::new(),
                    description_html: String::new(),
                    vendor: store.shop.name.clone(),
                    product_type: String::new(),
                    tags: Vec::new(),
                    status: "ACTIVE".to_string(),
                    template_suffix: None,
                    seo_title: None,
                    seo_description: None,
                    category: None,
                    options: Vec::new(),
                    variants: Vec::new(),
                    metafields: Vec::new(),
                    media: Vec::new(),
                    created_at: t,
                    updated_at: t,
                    published_at: None,
                };
                Draft { product, existing: false, mode }
            }
        }
    }

    /// Title, handle, vendor, type, description, tags, status, SEO, category, template.
    fn scalars(&mut self, store: &Store, input: &Map<String, Value>, errors: &mut Vec<UserErr>) {
        let set = self.mode == Mode::Set;
        let title = input.get("title").and_then(Value::as_str);
        if let Some(t) = title {
            if t.chars().count() > MAX_TEXT {
                errors.push(if set {
                    UserErr::new(&["input", "title"], "is too long (maximum is 255 characters)").code("INVALID_PRODUCT")
                } else {
                    UserErr::new(&["title"], "Title is too long (maximum is 255 characters)")
                });
            }
            self.product.title = t.to_string();
        }
        if !self.existing && self.product.title.trim().is_empty() {
            errors.push(if set {
                UserErr::new(&["input", "title"], "Title can't be blank").code("INVALID_PRODUCT")
            } else {
                UserErr::new(&["title"], "Title can't be blank")
            });
        }
        self.handle(store, input.get("handle").and_then(Value::as_str), errors);
        if let Some(v) = input.get("vendor").and_then(Value::as_str) {
            if v.chars().count() > MAX_TEXT {
                errors.push(if set {
                    UserErr::new(&["input"], "Vendor is too long (maximum is 255 characters)").code("INVALID_PRODUCT")
                } else {
                    UserErr::new(&["vendor"], "Vendor is too long (maximum is 255 characters)")
                });
            }
            self.product.vendor = v.to_string();
        }
        if let Some(v) = input.get("productType").and_then(Value::as_str) {
            if v.chars().count() > MAX_TEXT {
                if set {
                    errors.push(
                        UserErr::new(&["input"], "Product type is too long (maximum is 255 characters)")
                            .code("INVALID_PRODUCT"),
                    );
                    errors.push(
                        UserErr::new(&["input"], "Custom product type is too long (maximum is 255 characters)")
                            .code("INVALID_PRODUCT"),
                    );
                } else {
                    errors.push(UserErr::new(&["productType"], "Product type is too long (maximum is 255 characters)"));
                }
            }
            self.product.product_type = v.to_string();
        }
        if let Some(v) = input.get("descriptionHtml") {
            self.product.description_html = v.as_str().unwrap_or_default().to_string();
        }
        if let Some(tags) = input.get("tags").and_then(Value::as_array) {
            self.product.tags = normalize_tags(tags.iter().filter_map(Value::as_str));
        }
        if let Some(status) = input.get("status").and_then(Value::as_str) {
            self.product.status = status.to_string();
        }
        if self.product.status == "ACTIVE" && self.product.published_at.is_none() {
            self.product.published_at = Some(now());
        }
        if let Some(seo) = input.get("seo").and_then(Value::as_object) {
            if let Some(t) = seo.get("title") {
                self.product.seo_title = t.as_str().map(String::from);
            }
            if let Some(d) = seo.get("description") {
                self.product.seo_description = d.as_str().map(String::from);
            }
        }
        if let Some(c) = input.get("category") {
            self.product.category = c.as_str().map(String::from);
        }
        if let Some(t) = input.get("templateSuffix") {
            self.product.template_suffix = t.as_str().filter(|s| !s.is_empty()).map(String::from);
        }
    }

    /// Shopify's handle rules: explicit handles are normalised and must be free; generated ones
    /// (from the title, for new products and for blank handles) are de-duplicated; without a
    /// handle an existing product keeps its own.
    fn handle(&mut self, store: &Store, explicit: Option<&str>, errors: &mut Vec<UserErr>) {
        let id = self.product.id;
        let taken = |h: &str| store.product_handle_taken(h, id);
        let too_long = |errors: &mut Vec<UserErr>| {
            errors.push(match self.mode {
                Mode::Set => {
                    UserErr::new(&["input"], "Handle is too long (maximum is 255 characters)").code("INVALID_PRODUCT")
                }
                _ => UserErr::new(&["handle"], "Handle is too long (maximum is 255 characters)"),
            });
        };
        // A blank handle asks for one generated from the title, as does a new product without one.
        let regenerate = explicit.is_some_and(|h| h.trim().is_empty()) || (explicit.is_none() && !self.existing);
        match explicit.filter(|h| !h.trim().is_empty()) {
            Some(raw) => {
                let normalized = handles::normalize(raw);
                if normalized.is_empty() {
                    self.product.handle = handles::dedupe("product", taken);
                } else if normalized.chars().count() > MAX_HANDLE {
                    too_long(errors);
                } else if taken(&normalized) {
                    let err = UserErr::new(
                        &["input", "handle"],
                        format!("Handle '{raw}' already in use. Please provide a new handle."),
                    );
                    errors.push(if self.mode == Mode::Set { err.code("HANDLE_NOT_UNIQUE") } else { err });
                } else {
                    self.product.handle = normalized;
                }
            }
            None if !regenerate => {}
            None => {
                let mut base = handles::normalize(&self.product.title);
                if base.is_empty() {
                    base = "product".to_string();
                }
                if base.chars().count() > MAX_HANDLE {
                    too_long(errors);
                } else {
                    self.product.handle = handles::dedupe(&base, taken);
                }
            }
        }
    }

    /// `productOptions` and `variants` of `productSet` (both lists replace).
    fn options_and_variants(&mut self, store: &mut Store, input: &Map<String, Value>, errors: &mut Vec<UserErr>) {
        let options_in = input.get("productOptions").and_then(Value::as_array);
        let variants_in = input.get("variants").and_then(Value::as_array);
        match (options_in, variants_in) {
            (None, None) => {
                if !self.existing {
                    self.default_variant(store);
                }
            }
            (Some(_), None) => errors.push(
                UserErr::new(&["input", "variants"], "Variants input is required when updating product options")
                    .code("VARIANTS_INPUT_MISSING"),
            ),
            (None, Some(_)) if !self.existing => errors.push(
                UserErr::new(&["input", "productOptions"], "Must specify product options when updating variants.")
                    .code("PRODUCT_OPTIONS_INPUT_MISSING"),
            ),
            (_, Some(variants)) if variants.is_empty() => errors.push(
                UserErr::new(&["input", "variants"], "A product must have at least one variant.")
                    .code("INVALID_VARIANT"),
            ),
            (options, Some(variants)) => {
                if let Some(options) = options {
                    let before = errors.len();
                    let built = self.build_options(store, options, errors);
                    if errors.len() > before {
                        return;
                    }
                    self.product.options = built;
                }
                self.build_variants(store, variants, errors);
            }
        }
    }

    fn default_variant(&mut self, store: &mut Store) {
        let option_id = store.alloc_id();
        let value_id = store.alloc_id();
        self.product.options = vec![ProductOption {
            id: option_id,
            name: "Title".to_string(),
            position: 1,
            values: vec![OptionValue { id: value_id, name: "Default Title".to_string() }],
        }];
        let variant = new_variant(store, vec!["Default Title".to_string()], 1);
        self.product.variants = vec![variant];
    }

    fn build_options(&self, store: &mut Store, inputs: &[Value], errors: &mut Vec<UserErr>) -> Vec<ProductOption> {
        if inputs.len() > MAX_OPTIONS {
            errors.push(UserErr::new(&["input", "productOptions"], "Options over limit.").code("OPTIONS_OVER_LIMIT"));
            return Vec::new();
        }
        let mut out: Vec<(i64, usize, ProductOption)> = Vec::new();
        let mut names = BTreeSet::new();
        for (i, o) in inputs.iter().enumerate() {
            let idx = i.to_string();
            let at = |rest: &[&str]| {
                let mut p = vec!["input".to_string(), "productOptions".to_string(), idx.clone()];
                p.extend(rest.iter().map(|s| s.to_string()));
                p
            };
            let existing = o
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id_of(id, "ProductOption"))
                .and_then(|id| self.product.options.iter().find(|x| x.id == id))
                .or_else(|| {
                    o.get("name")
                        .and_then(Value::as_str)
                        .and_then(|n| self.product.options.iter().find(|x| x.name == n))
                });
            if o.get("id").and_then(Value::as_str).is_some() && existing.is_none() {
                errors.push(UserErr::at(at(&["id"]), "Option does not exist.").code("OPTION_DOES_NOT_EXIST"));
                continue;
            }
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .map(String::from)
                .or_else(|| existing.map(|e| e.name.clone()));
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                errors.push(UserErr::at(at(&["name"]), "Option name can't be blank").code("INVALID_INPUT"));
                continue;
            };
            if !names.insert(name.to_lowercase()) {
                errors.push(UserErr::at(at(&["name"]), "Duplicated option name.").code("DUPLICATED_OPTION_NAME"));
                continue;
            }
            let values_in = o.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
            if values_in.is_empty() {
                errors.push(
                    UserErr::at(at(&["values"]), "Each option must have at least one option value specified.")
                        .code("OPTION_VALUES_MISSING"),
                );
                continue;
            }
            let mut values: Vec<OptionValue> = Vec::new();
            for (j, v) in values_in.iter().enumerate() {
                let by_id = v
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| id_of(id, "ProductOptionValue"))
                    .and_then(|id| existing.and_then(|e| e.values.iter().find(|x| x.id == id)));
                let vname = v
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .map(String::from)
                    .or_else(|| by_id.map(|b| b.name.clone()));
                let Some(vname) = vname.filter(|n| !n.is_empty()) else {
                    errors.push(
                        UserErr::at(at(&["values", &j.to_string()]), "Option value does not exist.")
                            .code("OPTION_VALUE_DOES_NOT_EXIST"),
                    );
                    continue;
                };
                if values.iter().any(|x| x.name.eq_ignore_ascii_case(&vname)) {
                    errors.push(
                        UserErr::at(at(&["values", &j.to_string()]), "Duplicated option value.")
                            .code("DUPLICATED_OPTION_VALUE"),
                    );
                    continue;
                }
                let id = by_id
                    .map(|b| b.id)
                    .or_else(|| existing.and_then(|e| e.values.iter().find(|x| x.name == vname).map(|x| x.id)))
                    .unwrap_or_else(|| store.alloc_id());
                values.push(OptionValue { id, name: vname });
            }
            let position = o.get("position").and_then(Value::as_i64).unwrap_or(i as i64 + 1);
            let id = existing.map_or_else(|| store.alloc_id(), |e| e.id);
            out.push((position, i, ProductOption { id, name, position, values }));
        }
        out.sort_by_key(|(pos, i, _)| (*pos, *i));
        out.into_iter()
            .enumerate()
            .map(|(i, (_, _, mut o))| {
                o.position = i as i64 + 1;
                o
            })
            .collect()
    }

    fn build_variants(&mut self, store: &mut Store, inputs: &[Value], errors: &mut Vec<UserErr>) {
        let options = self.product.options.clone();
        let mut seen: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        let mut built = Vec::with_capacity(inputs.len());
        for (i, v) in inputs.iter().enumerate() {
            let path = |rest: &[&str]| {
                let mut p = vec!["input".to_string(), "variants".to_string(), i.to_string()];
                p.extend(rest.iter().map(|s| s.to_string()));
                p
            };
            let mut values: Vec<Option<String>> = vec![None; options.len()];
            let mut ok = true;
            for (j, ov) in v.get("optionValues").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let j = j.to_string();
                let option_idx = ov
                    .get("optionId")
                    .and_then(Value::as_str)
                    .and_then(|id| id_of(id, "ProductOption"))
                    .and_then(|id| options.iter().position(|o| o.id == id))
                    .or_else(|| {
                        ov.get("optionName")
                            .and_then(Value::as_str)
                            .and_then(|n| options.iter().position(|o| o.name == n))
                    });
                let Some(oi) = option_idx else {
                    errors.push(
                        UserErr::at(path(&["optionValues", &j]), "Option does not exist.")
                            .code("OPTION_DOES_NOT_EXIST"),
                    );
                    ok = false;
                    continue;
                };
                let value = ov
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| id_of(id, "ProductOptionValue"))
                    .and_then(|id| options[oi].values.iter().find(|x| x.id == id))
                    .or_else(|| {
                        ov.get("name")
                            .and_then(Value::as_str)
                            .and_then(|n| options[oi].values.iter().find(|x| x.name == n))
                    });
                let Some(value) = value else {
                    errors.push(
                        UserErr::at(path(&["optionValues", &j]), "Option value does not exist.")
                            .code("OPTION_VALUE_DOES_NOT_EXIST"),
                    );
                    ok = false;
                    continue;
                };
                values[oi] = Some(value.name.clone());
            }
            if !ok {
                continue;
            }
            let Some(values) = values.into_iter().collect::<Option<Vec<String>>>() else {
                errors.push(
                    UserErr::at(path(&["optionValues"]), "Option values must be specified for every product option.")
                        .code("INVALID_VARIANT"),
                );
                continue;
            };
            if seen.insert(values.clone(), i).is_some() {
                errors.push(
                    UserErr::at(
                        vec!["input".to_string(), "variants".to_string(), i.to_string()],
                        format!(
                            "The variant '{}' already exists. Please change at least one option value.",
                            values.join(" / ")
                        ),
                    )
                    .code("INVALID_VARIANT"),
                );
                continue;
            }
            let existing = match v.get("id").and_then(Value::as_str) {
                Some(id) => {
                    match id_of(id, "ProductVariant").and_then(|n| self.product.variants.iter().find(|x| x.id == n)) {
                        Some(x) => Some(x.clone()),
                        None => {
                            errors.push(
                                UserErr::at(path(&["id"]), "Product variant does not exist.")
                                    .code("PRODUCT_VARIANT_DOES_NOT_EXIST"),
                            );
                            continue;
                        }
                    }
                }
                None => self.product.variants.iter().find(|x| x.option_values == values).cloned(),
            };
            let mut variant = match existing {
                Some(mut x) => {
                    x.option_values = values;
                    x.updated_at = now();
                    x
                }
                None => new_variant(store, values, 0),
            };
            variant.position = i as i64 + 1;
            apply_variant_fields(store, &mut variant, v, &path, errors);
            built.push(variant);
        }
        self.product.variants = built;
    }

    /// `productOptions` of `productCreate`: the options, and one variant with each option's first
    /// value.
    fn create_options(&mut self, store: &mut Store, inputs: &[Value], errors: &mut Vec<UserErr>) {
        let built = self.build_options(store, inputs, errors);
        if built.is_empty() {
            return;
        }
        let values = built.iter().map(|o| o.values[0].name.clone()).collect();
        self.product.options = built;
        self.product.variants = vec![new_variant(store, values, 1)];
    }

    /// `files` of `productSet`, a list field like the others: an entry with the `id` of one of the
    /// product's media keeps that media (its alt text updated when given, its image replaced when
    /// an `originalSource` comes along); an entry without `id` is a new media fetched from its
    /// `originalSource` — even when the product already has one from that source: Shopify cannot
    /// tell, its media being served from CDN URLs; the product's media left out are deleted.
    /// Returns each entry's media id (`None` for an entry in error).
    fn files(&mut self, store: &mut Store, list: &[Value], errors: &mut Vec<UserErr>) -> Vec<Option<u64>> {
        let mut media: Vec<Media> = Vec::with_capacity(list.len());
        let mut ids = Vec::with_capacity(list.len());
        for (i, f) in list.iter().enumerate() {
            let alt = f.get("alt").and_then(Value::as_str).map(String::from);
            let source = f.get("originalSource").and_then(Value::as_str).filter(|s| !s.trim().is_empty());
            let filename = f.get("filename").and_then(Value::as_str);
            let entry = match f.get("id").and_then(Value::as_str) {
                Some(id) => {
                    let n = id_of(id, "MediaImage");
                    match (
                        media.iter().position(|m| Some(m.id) == n),
                        self.product.media.iter().find(|m| Some(m.id) == n),
                    ) {
                        // The same media twice: one media.
                        (Some(_), _) => {
                            ids.push(n);
                            continue;
                        }
                        (None, Some(m)) => {
                            let mut m = m.clone();
                            if alt.is_some() {
                                m.alt = alt;
                            }
                            if let Some(src) = source {
                                let t = now();
                                m.filename = unique_file_name(store, filename, src, m.id, t, &media);
                                m.url = store.cdn_url(&m.filename, t);
                                m.source = src.to_string();
                            }
                            Some(m)
                        }
                        (None, None) => None,
                    }
                }
                None => source.map(|src| {
                    let (id, t) = (store.alloc_id(), now());
                    let filename = unique_file_name(store, filename, src, id, t, &media);
                    Media {
                        id,
                        alt,
                        url: store.cdn_url(&filename, t),
                        source: src.to_string(),
                        filename,
                        content_type: f.get("contentType").and_then(Value::as_str).unwrap_or("IMAGE").to_string(),
                        created_at: t,
                    }
                }),
            };
            match entry {
                Some(m) => {
                    ids.push(Some(m.id));
                    media.push(m);
                }
                None => {
                    ids.push(None);
                    errors.push(
                        UserErr::at(vec!["input".into(), "files".into(), i.to_string()], "File does not exist.")
                            .code("INVALID_INPUT"),
                    );
                }
            }
        }
        self.product.media = media;
        ids
    }

    /// `file` of each variant: the media it shows, one of the product's — by `id`, or by the
    /// `originalSource` of an entry of this input's `files` (Shopify: "any file specified here
    /// must also be specified in the `files` input for the product"). A variant sent without
    /// `file` keeps its image, unless its media was deleted. `files` is this input's list with the
    /// media id of each entry.
    fn variant_files(
        &mut self,
        inputs: &[Value],
        files: Option<(&[Value], &[Option<u64>])>,
        errors: &mut Vec<UserErr>,
    ) {
        for (i, v) in inputs.iter().enumerate() {
            let Some(f) = v.get("file").filter(|f| !f.is_null()) else { continue };
            let found = match f.get("id").and_then(Value::as_str) {
                Some(id) => id_of(id, "MediaImage").filter(|n| self.product.media.iter().any(|m| m.id == *n)),
                None => {
                    let source = f.get("originalSource").and_then(Value::as_str);
                    files.and_then(|(list, ids)| {
                        let j = list.iter().position(|e| {
                            source.is_some() && e.get("originalSource").and_then(Value::as_str) == source
                        })?;
                        ids[j]
                    })
                }
            };
            match (found, self.product.variants.get_mut(i)) {
                (Some(media), Some(variant)) => variant.image = Some(media),
                (Some(_), None) => {}
                // Not a capture's wording: the schema states the rule, not the message.
                (None, _) => errors.push(
                    UserErr::at(
                        vec!["input".into(), "variants".into(), i.to_string(), "file".into()],
                        "File must also be specified in the files input for the product.",
                    )
                    .code("INVALID_VARIANT"),
                ),
            }
        }
        let media = &self.product.media;
        for variant in &mut self.product.variants {
            if variant.image.is_some_and(|id| !media.iter().any(|m| m.id == id)) {
                variant.image = None;
            }
        }
    }

    fn commit(mut self, store: &mut Store) -> u64 {
        self.product.updated_at = now();
        let id = self.product.id;
        store.insert_product(self.product);
        id
    }
}

fn new_variant(store: &mut Store, option_values: Vec<String>, position: i64) -> Variant {
    let t = now();
    Variant {
        id: store.alloc_id(),
        inventory_item_id: store.alloc_id(),
        option_values,
        sku: None,
        barcode: None,
        price: "0.00".to_string(),
        compare_at_price: None,
        taxable: true,
        inventory_policy: "DENY".to_string(),
        position,
        tracked: false,
        requires_shipping: true,
        unit_cost: None,
        harmonized_system_code: None,
        province_code_of_origin: None,
        weight: None,
        inventory: BTreeMap::new(),
        metafields: Vec::new(),
        image: None,
        created_at: t,
        updated_at: t,
    }
}

/// The file name a new image gets: the one asked for, or the last segment of its source URL;
/// when the shop (or this input) already has a file of that name, a UUID is appended to it, as
/// Shopify does by default (`duplicateResolutionMode: APPEND_UUID`).
fn unique_file_name(store: &Store, requested: Option<&str>, source: &str, id: u64, t: i64, draft: &[Media]) -> String {
    let base = match requested.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => {
            let path = source.split(['?', '#']).next().unwrap_or_default();
            path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("file").to_string()
        }
    };
    if !store.file_name_taken(&base) && !draft.iter().any(|m| m.filename == base) {
        return base;
    }
    let (stem, ext) = match base.rfind('.') {
        Some(dot) if dot > 0 => base.split_at(dot),
        _ => (base.as_str(), ""),
    };
    format!("{stem}_{}{ext}", pseudo_uuid(id, t))
}

/// A UUID-shaped name suffix, derived from the media id and time (the sandbox needs them unique,
/// not random).
fn pseudo_uuid(id: u64, t: i64) -> String {
    // splitmix64: well-spread bits from consecutive inputs.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (a, b) = (mix(id), mix(id ^ (t as u64).rotate_left(32)));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// Price-like values as Shopify prints them (`79.99`, `10.00`).
fn money(text: &str) -> Option<(f64, String)> {
    let v: f64 = text.trim().parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    Some((v, super::money::two_decimals(text)?))
}

fn apply_variant_fields(
    store: &mut Store,
    variant: &mut Variant,
    input: &Value,
    path: &dyn Fn(&[&str]) -> Vec<String>,
    errors: &mut Vec<UserErr>,
) {
    if let Some(p) = input.get("price") {
        match p.as_str().and_then(money) {
            Some((v, _)) if v < 0.0 => errors.push(
                UserErr::at(path(&["price"]), "Price must be greater than or equal to 0").code("INVALID_VARIANT"),
            ),
            Some((_, text)) => variant.price = text,
            None if p.is_null() => {}
            None => errors.push(UserErr::at(path(&["price"]), "Price is invalid").code("INVALID_VARIANT")),
        }
    }
    if let Some(p) = input.get("compareAtPrice") {
        match p.as_str().and_then(money) {
            Some((v, _)) if v < 0.0 => errors.push(
                UserErr::at(path(&["compareAtPrice"]), "Compare at price must be greater than or equal to 0")
                    .code("INVALID_VARIANT"),
            ),
            Some((_, text)) => variant.compare_at_price = Some(text),
            None => variant.compare_at_price = None,
        }
    }
    if let Some(s) = input.get("sku") {
        variant.sku = s.as_str().map(String::from);
    }
    if let Some(b) = input.get("barcode") {
        variant.barcode = b.as_str().map(String::from);
    }
    if let Some(t) = input.get("taxable").and_then(Value::as_bool) {
        variant.taxable = t;
    }
    if let Some(p) = input.get("inventoryPolicy").and_then(Value::as_str) {
        variant.inventory_policy = p.to_string();
    }
    if let Some(item) = input.get("inventoryItem").and_then(Value::as_object) {
        if let Some(t) = item.get("tracked").and_then(Value::as_bool) {
            variant.tracked = t;
        }
        if let Some(r) = item.get("requiresShipping").and_then(Value::as_bool) {
            variant.requires_shipping = r;
        }
        if let Some(s) = item.get("sku") {
            variant.sku = s.as_str().map(String::from);
        }
        if let Some(c) = item.get("cost") {
            match c.as_str().and_then(|s| s.trim().parse::<f64>().ok()) {
                Some(v) if v < 0.0 => errors.push(
                    UserErr::at(path(&["inventoryItem", "cost"]), "Cost per item must be greater than or equal to 0")
                        .code("INVALID_VARIANT"),
                ),
                Some(v) if v >= 1e18 => errors.push(
                    UserErr::at(
                        path(&["inventoryItem", "cost"]),
                        "Cost per item must be less than 1000000000000000000",
                    )
                    .code("INVALID_VARIANT"),
                ),
                Some(v) => variant.unit_cost = Some(format!("{v:.2}")),
                None => variant.unit_cost = None,
            }
        }
        if let Some(h) = item.get("harmonizedSystemCode") {
            variant.harmonized_system_code = h.as_str().map(String::from);
        }
        if let Some(p) = item.get("provinceCodeOfOrigin") {
            variant.province_code_of_origin = p.as_str().map(String::from);
        }
        if let Some(w) = item.get("measurement").and_then(|m| m.get("weight")).and_then(Value::as_object) {
            let value = w.get("value").and_then(Value::as_f64).unwrap_or(0.0);
            let unit = w.get("unit").and_then(Value::as_str).unwrap_or("KILOGRAMS");
            variant.weight = Some((value, unit.to_string()));
        }
    }
    if let Some(list) = input.get("inventoryQuantities").and_then(Value::as_array) {
        let mut inventory = BTreeMap::new();
        for (k, q) in list.iter().enumerate() {
            let k = k.to_string();
            let location = q.get("locationId").and_then(Value::as_str).and_then(|l| id_of(l, "Location"));
            let Some(location) = location.filter(|l| store.locations.contains_key(l)) else {
                errors.push(
                    UserErr::at(path(&["inventoryQuantities", &k, "locationId"]), "Location does not exist.")
                        .code("INVALID_VARIANT"),
                );
                continue;
            };
            let name = q.get("name").and_then(Value::as_str).unwrap_or_default();
            if !matches!(name, "available" | "on_hand") {
                errors.push(
                    UserErr::at(
                        path(&["inventoryQuantities", &k, "name"]),
                        format!("Inventory quantity name '{name}' is not valid; use `available` or `on_hand`."),
                    )
                    .code("INVALID_VARIANT"),
                );
                continue;
            }
            inventory.insert(location, q.get("quantity").and_then(Value::as_i64).unwrap_or(0));
        }
        variant.inventory = inventory;
    }
    if let Some(list) = input.get("metafields").and_then(Value::as_array) {
        let p = path(&["metafields"]);
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        variant.metafields = metafields::apply(store, &variant.metafields, list, true, &p, errors);
    }
}

/// Tags as Shopify stores them: trimmed, de-duplicated (case-insensitively), sorted.
fn normalize_tags<'a>(tags: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags.flat_map(|t| t.split(',')) {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            out.push(t.to_string());
        }
    }
    out.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
    out
}

/// Resolves a list of collection GIDs, reporting unknown ones.
fn collection_ids(store: &Store, list: &[Value], path: &[&str], errors: &mut Vec<UserErr>) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        match v.as_str().and_then(|s| id_of(s, "Collection")).filter(|c| store.collections.contains_key(c)) {
            Some(c) => {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            None => {
                let mut p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                p.push(i.to_string());
                errors.push(UserErr::at(p, "Collection does not exist").code("INVALID_INPUT"));
            }
        }
    }
    out
}

fn join(store: &mut Store, product: u64, collection: u64) {
    if let Some(c) = store.collections.get_mut(&collection) {
        if !c.products.contains(&product) {
            c.products.push(product);
            c.updated_at = now();
        }
    }
}

/// Makes `product` a member of exactly `wanted` (productSet's `collections` replaces).
fn set_memberships(store: &mut Store, product: u64, wanted: &[u64]) {
    for c in store.collections.values_mut() {
        let member = c.products.contains(&product);
        let want = wanted.contains(&c.id);
        if member && !want {
            c.products.retain(|p| *p != product);
            c.updated_at = now();
        }
    }
    for c in wanted {
        join(store, product, *c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::gid;
    use serde_json::json;

    fn product_gid(id: u64) -> String {
        crate::store::gid("Product", id)
    }

    fn set(store: &mut Store, identifier: Value, input: Value) -> SetOutcome {
        apply_product_set(store, Some(&identifier), &input)
    }

    #[test]
    fn identifier_upserts_never_duplicate() {
        let mut store = Store::new("shop");
        let input = json!({"handle": "red-shirt", "title": "Red shirt"});
        let first = set(&mut store, json!({"handle": "red-shirt"}), input.clone());
        let second = set(&mut store, json!({"handle": "red-shirt"}), input);
        assert!(first.errors.is_empty() && second.errors.is_empty());
        assert_eq!(first.product, second.product);
        assert_eq!(store.products.len(), 1);
    }

    #[test]
    fn creates_without_identifier_duplicate_with_suffixed_handles() {
        let mut store = Store::new("shop");
        let input = json!({"title": "Red shirt"});
        apply_product_set(&mut store, None, &input);
        apply_product_set(&mut store, None, &input);
        let handles: Vec<_> = store.products.values().map(|p| p.handle.clone()).collect();
        assert_eq!(handles, vec!["red-shirt", "red-shirt-1"]);
    }

    #[test]
    fn lists_replace() {
        let mut store = Store::new("shop");
        let opts = json!([{"name": "Size", "values": [{"name": "S"}, {"name": "M"}]}]);
        let v = |s: &str| json!({"optionValues": [{"optionName": "Size", "name": s}], "price": "1"});
        let first = apply_product_set(
            &mut store,
            None,
            &json!({"title": "T", "productOptions": opts, "variants": [v("S"), v("M")]}),
        );
        let id = first.product.unwrap();
        let kept = store.products[&id].variants[0].id;
        let ident = json!({"id": product_gid(id)});
        let out = set(&mut store, ident, json!({"productOptions": opts, "variants": [v("S")]}));
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let p = &store.products[&id];
        assert_eq!(p.variants.len(), 1);
        assert_eq!(p.variants[0].id, kept, "a variant matched by its options keeps its id");
        assert_eq!(p.variants[0].price, "1.00");
    }

    fn media_ids(store: &Store, id: u64) -> Vec<u64> {
        store.products[&id].media.iter().map(|m| m.id).collect()
    }

    #[test]
    fn files_without_id_are_new_media_and_files_left_out_are_deleted() {
        let mut store = Store::new("shop");
        let (a, b) = ("https://pim.example/a.jpg", "https://pim.example/b.jpg");
        let first = set(
            &mut store,
            json!({"handle": "shirt"}),
            json!({"handle": "shirt", "title": "Shirt", "files": [{"originalSource": a, "alt": "front"}, {"originalSource": b}]}),
        );
        let id = first.product.unwrap();
        let created = media_ids(&store, id);
        assert_eq!(created.len(), 2);
        let m = store.products[&id].media[0].clone();
        assert_eq!(m.source, a);
        assert!(m.url.starts_with("https://cdn.shopify.com/s/files/1/"), "served from the CDN: {}", m.url);
        assert!(m.url.contains("/files/a.jpg?v="), "{}", m.url);

        // The same sources again, without ids: new media (Shopify cannot match them); the old ones
        // are left out, so deleted.
        let again = json!({"handle": "shirt", "files": [{"originalSource": a}, {"originalSource": b}]});
        assert!(set(&mut store, json!({"handle": "shirt"}), again).errors.is_empty());
        let recreated = media_ids(&store, id);
        assert_eq!(recreated.len(), 2);
        assert!(recreated.iter().all(|m| !created.contains(m)), "{created:?} → {recreated:?}");
        assert_ne!(store.products[&id].media[0].url, m.url, "a file name in use gets a UUID");

        // By id: kept (alt updated); the media left out is deleted.
        let keep = gid("MediaImage", recreated[1]);
        let out = set(
            &mut store,
            json!({"handle": "shirt"}),
            json!({"handle": "shirt", "files": [{"id": keep, "alt": "back"}]}),
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(media_ids(&store, id), vec![recreated[1]]);
        assert_eq!(store.products[&id].media[0].alt.as_deref(), Some("back"));

        // Leaving `files` out leaves the media alone; an id that is not the product's is refused.
        assert!(set(&mut store, json!({"handle": "shirt"}), json!({"handle": "shirt", "title": "T"}))
            .errors
            .is_empty());
        assert_eq!(media_ids(&store, id), vec![recreated[1]]);
        let gone = gid("MediaImage", recreated[0]);
        let out = set(&mut store, json!({"handle": "shirt"}), json!({"handle": "shirt", "files": [{"id": gone}]}));
        assert_eq!(out.errors[0].field, Some(vec!["input".into(), "files".into(), "0".into()]));
        assert_eq!(media_ids(&store, id), vec![recreated[1]], "a refused input changes nothing");
    }

    #[test]
    fn a_variant_file_is_one_of_the_product_files() {
        let mut store = Store::new("shop");
        let opts = json!([{"name": "Size", "values": [{"name": "S"}, {"name": "M"}]}]);
        let (a, b) = ("https://pim.example/a.jpg", "https://pim.example/b.jpg");
        let v = |size: &str, file: Value| json!({"optionValues": [{"optionName": "Size", "name": size}], "file": file});
        let input = json!({"handle": "shirt", "title": "Shirt", "productOptions": opts,
            "files": [{"originalSource": a}, {"originalSource": b}],
            "variants": [v("S", json!({"originalSource": b})), v("M", Value::Null)]});
        let id = set(&mut store, json!({"handle": "shirt"}), input).product.unwrap();
        let media = media_ids(&store, id);
        let variants = &store.products[&id].variants;
        assert_eq!((variants[0].image, variants[1].image), (Some(media[1]), None));

        // By id; a variant without `file` keeps its image until its media is deleted.
        let input = json!({"handle": "shirt", "productOptions": opts, "files": [{"id": gid("MediaImage", media[0])}],
            "variants": [v("S", Value::Null), v("M", json!({"id": gid("MediaImage", media[0])}))]});
        assert!(set(&mut store, json!({"handle": "shirt"}), input).errors.is_empty());
        let variants = &store.products[&id].variants;
        assert_eq!((variants[0].image, variants[1].image), (None, Some(media[0])));

        // A variant file that is not among the product's files is refused.
        let input = json!({"handle": "shirt", "productOptions": opts, "files": [],
            "variants": [v("S", json!({"originalSource": a})), v("M", Value::Null)]});
        let out = set(&mut store, json!({"handle": "shirt"}), input);
        assert_eq!(out.errors[0].code.as_deref(), Some("INVALID_VARIANT"), "{:?}", out.errors);
        assert_eq!(media_ids(&store, id), vec![media[0]]);
    }

    #[test]
    fn tags_are_sorted_and_unique() {
        assert_eq!(normalize_tags(["b", "a", " A ", "c,d"].into_iter()), vec!["a", "b", "c", "d"]);
    }
}
