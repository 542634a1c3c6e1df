//! Execution of a validated operation: field collection (fragments, `@skip`/`@include`),
//! resolution through [`super::read`] and the mutation modules, value completion with
//! non-null propagation, and the connection values shared by every paginated field.

use apollo_compiler::ast::{self, OperationType, Type};
use apollo_compiler::Schema;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::document::Document;
use super::response::{GqlError, Out, Pos};
use super::schema::{self as sch, MUTATION_ROOT, QUERY_ROOT};
use super::store::{Store, UserErr};
use super::variables::field_arguments;
use super::{bulk, collections, products, read, translations};

/// Settings the resolvers need from the running sandbox.
#[derive(Debug, Clone)]
pub struct Env {
    /// `http://127.0.0.1:PORT`, for URLs the sandbox hands out (uploads, bulk results).
    pub base_url: String,
    /// Where staged uploads go (the sandbox itself unless configured: a test can name a host
    /// that cannot be reached, as a real store's storage bucket may be from some networks).
    pub upload_base: String,
}

/// Work a mutation leaves to do after the store lock is released (timers, background jobs).
#[derive(Debug, Clone, PartialEq)]
pub enum Followup {
    /// Complete an asynchronous `productSet` operation.
    ProductOperation { operation: u64, identifier: Option<Value>, input: Value },
    /// Start a bulk mutation.
    BulkOperation { operation: u64 },
}

/// An object value with its concrete GraphQL type.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    QueryRoot,
    Shop,
    Product(u64),
    Variant(u64, u64),
    InventoryItem(u64, u64),
    Measurement(u64, u64),
    ProductOption(u64, u64),
    /// Product, option, value.
    OptionValue(u64, u64, u64),
    /// Product, variant, index of the option.
    SelectedOption(u64, u64, usize),
    /// Owner GID, metafield id.
    Metafield(String, u64),
    /// Product, media id.
    Media(u64, u64),
    Collection(u64),
    Location(u64),
    ShopLocale(String),
    TranslatableResource(String),
    ProductSetOperation(u64),
    BulkOperation(u64),
    Connection(Box<Connection>),
    /// A value type computed up front (payloads, user errors, `SEO`, `Count`, …).
    Fields(&'static str, Vec<(&'static str, Resolved)>),
}

/// What a field resolves to, before its selection set is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Null,
    Leaf(Out),
    Object(Obj),
    List(Vec<Resolved>),
}

impl Resolved {
    pub fn str(s: impl Into<String>) -> Resolved {
        Resolved::Leaf(Out::Str(s.into()))
    }

    pub fn opt_str(s: Option<impl Into<String>>) -> Resolved {
        s.map_or(Resolved::Null, |s| Resolved::str(s))
    }

    pub fn bool(b: bool) -> Resolved {
        Resolved::Leaf(Out::Bool(b))
    }

    pub fn int(i: i64) -> Resolved {
        Resolved::Leaf(Out::Int(i))
    }

    pub fn obj(o: Obj) -> Resolved {
        Resolved::Object(o)
    }

    pub fn opt_obj(o: Option<Obj>) -> Resolved {
        o.map_or(Resolved::Null, Resolved::Object)
    }

    pub fn fields(ty: &'static str, fields: Vec<(&'static str, Resolved)>) -> Resolved {
        Resolved::Object(Obj::Fields(ty, fields))
    }

    pub fn list(items: impl IntoIterator<Item = Resolved>) -> Resolved {
        Resolved::List(items.into_iter().collect())
    }

    /// A `userErrors` list; `with_code` for error types that have a `code` field.
    pub fn user_errors(ty: &'static str, errors: &[UserErr]) -> Resolved {
        Resolved::List(
            errors
                .iter()
                .map(|e| {
                    let field = match &e.field {
                        Some(f) => Resolved::list(f.iter().map(|s| Resolved::str(s.clone()))),
                        None => Resolved::Null,
                    };
                    Resolved::fields(
                        ty,
                        vec![
                            ("field", field),
                            ("message", Resolved::str(e.message.clone())),
                            ("code", Resolved::opt_str(e.code.clone())),
                        ],
                    )
                })
                .collect(),
        )
    }
}

/// A page of a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub type_name: &'static str,
    pub edge_type: &'static str,
    /// Nodes with their cursors.
    pub items: Vec<(Obj, String)>,
    pub has_next: bool,
    pub has_previous: bool,
}

impl Obj {
    /// The concrete object type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Obj::QueryRoot => QUERY_ROOT,
            Obj::Shop => "Shop",
            Obj::Product(_) => "Product",
            Obj::Variant(..) => "ProductVariant",
            Obj::InventoryItem(..) => "InventoryItem",
            Obj::Measurement(..) => "InventoryItemMeasurement",
            Obj::ProductOption(..) => "ProductOption",
            Obj::OptionValue(..) => "ProductOptionValue",
            Obj::SelectedOption(..) => "SelectedOption",
            Obj::Metafield(..) => "Metafield",
            Obj::Media(..) => "MediaImage",
            Obj::Collection(_) => "Collection",
            Obj::Location(_) => "Location",
            Obj::ShopLocale(_) => "ShopLocale",
            Obj::TranslatableResource(_) => "TranslatableResource",
            Obj::ProductSetOperation(_) => "ProductSetOperation",
            Obj::BulkOperation(_) => "BulkOperation",
            Obj::Connection(c) => c.type_name,
            Obj::Fields(t, _) => t,
        }
    }
}

/// Arguments of one field, with typed getters.
pub struct Args<'a>(pub &'a Map<String, Value>);

impl Args<'_> {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_i64)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }
}

/// One execution of an operation.
pub struct Exec<'a> {
    pub schema: &'a Schema,
    pub doc: &'a Document,
    pub vars: Map<String, Value>,
    pub env: &'a Env,
    pub errors: Vec<GqlError>,
    pub followups: Vec<Followup>,
    /// Inside a bulk operation (mutations then always run synchronously).
    pub bulk: bool,
    /// Field errors must carry the position of the field being resolved.
    current_pos: Option<Pos>,
    current_path: Vec<Out>,
}

/// A field error raised by a resolver; the executor adds location and path.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub message: String,
    pub extensions: Vec<(String, Out)>,
}

impl FieldError {
    pub fn new(message: impl Into<String>) -> Self {
        FieldError { message: message.into(), extensions: Vec::new() }
    }

    pub fn code(mut self, code: &str) -> Self {
        self.extensions.push(("code".to_string(), Out::str(code)));
        self
    }
}

pub type FieldResult = Result<Resolved, FieldError>;

impl<'a> Exec<'a> {
    pub fn new(schema: &'a Schema, doc: &'a Document, vars: Map<String, Value>, env: &'a Env) -> Self {
        Exec {
            schema,
            doc,
            vars,
            env,
            errors: Vec::new(),
            followups: Vec::new(),
            bulk: false,
            current_pos: None,
            current_path: Vec::new(),
        }
    }

    /// Executes a query with read access to the store; returns `data`.
    pub fn run_query(&mut self, op: &ast::OperationDefinition, store: &Store) -> Out {
        self.complete_object(store, &Obj::QueryRoot, &op.selection_set, &mut Vec::new()).unwrap_or(Out::Null)
    }

    /// Executes a mutation: root fields one after the other, each mutating the store and then
    /// completing its payload against the updated store; returns `data`.
    pub fn run_mutation(&mut self, op: &ast::OperationDefinition, store: &mut Store) -> Out {
        debug_assert_eq!(op.operation_type, OperationType::Mutation);
        let grouped = self.collect(&op.selection_set, MUTATION_ROOT);
        let mut pairs = Vec::new();
        let mut path = Vec::new();
        for (key, fields) in grouped {
            let field = fields[0];
            path.push(Out::str(&key));
            self.current_pos = self.doc.pos(field);
            self.current_path = path.clone();
            let value = if field.name == "__typename" {
                Ok(Out::str(MUTATION_ROOT))
            } else {
                let Some(def) = sch::field(self.schema, MUTATION_ROOT, &field.name) else { continue };
                let args = field_arguments(self.schema, &def.arguments, &field.arguments, &self.vars);
                let resolved = match self.mutate(store, &field.name, &args) {
                    Ok(r) => r,
                    Err(e) => {
                        self.field_error(e);
                        Resolved::Null
                    }
                };
                let sub = merged_selections(&fields);
                self.complete_value(store, resolved, &def.ty, &sub, &mut path)
            };
            path.pop();
            match value {
                Ok(v) => pairs.push((key, v)),
                Err(()) => return Out::Null,
            }
        }
        Out::Obj(pairs)
    }

    fn mutate(&mut self, store: &mut Store, name: &str, args: &Map<String, Value>) -> FieldResult {
        let args = Args(args);
        match name {
            "productSet" => products::product_set(self, store, &args),
            "productCreate" => products::product_create(store, &args),
            "productUpdate" => products::product_update(store, &args),
            "productDelete" => products::product_delete(store, &args),
            "collectionCreate" => collections::collection_create(store, &args),
            "collectionUpdate" => collections::collection_update(store, &args),
            "collectionDelete" => collections::collection_delete(store, &args),
            "collectionAddProducts" => collections::collection_add_products(store, &args),
            "shopLocaleEnable" => translations::shop_locale_enable(store, &args),
            "shopLocaleDisable" => translations::shop_locale_disable(store, &args),
            "translationsRegister" => translations::translations_register(store, &args),
            "translationsRemove" => translations::translations_remove(store, &args),
            "stagedUploadsCreate" => bulk::staged_uploads_create(self, store, &args),
            "bulkOperationRunMutation" => bulk::bulk_operation_run_mutation(self, store, &args),
            "bulkOperationRunQuery" => bulk::bulk_operation_run_query(self, store, &args),
            "bulkOperationCancel" => bulk::bulk_operation_cancel(store, &args),
            other => Err(FieldError::new(format!("the sandbox does not implement `{other}`"))),
        }
    }

    /// Records a resolver's error at the current field.
    pub fn field_error(&mut self, e: FieldError) {
        let mut err = GqlError::new(e.message).at(self.current_pos).path(self.current_path.clone());
        err.extensions = e.extensions;
        self.errors.push(err);
    }

    /// CollectFields: groups the fields of a selection set by response key, following fragments
    /// whose type condition `type_name` satisfies and honouring `@skip`/`@include`.
    pub fn collect<'d>(
        &self,
        set: &'d [ast::Selection],
        type_name: &str,
    ) -> Vec<(String, Vec<&'d apollo_compiler::Node<ast::Field>>)>
    where
        'a: 'd,
    {
        let mut out: Vec<(String, Vec<&'d apollo_compiler::Node<ast::Field>>)> = Vec::new();
        let mut visited = Vec::new();
        self.collect_into(set, type_name, &mut out, &mut visited);
        out
    }

    fn collect_into<'d>(
        &self,
        set: &'d [ast::Selection],
        type_name: &str,
        out: &mut Vec<(String, Vec<&'d apollo_compiler::Node<ast::Field>>)>,
        visited: &mut Vec<String>,
    ) where
        'a: 'd,
    {
        let doc: &'a Document = self.doc;
        for sel in set {
            match sel {
                ast::Selection::Field(f) => {
                    if !self.included(&f.directives) {
                        continue;
                    }
                    let key = f.alias.as_ref().unwrap_or(&f.name).to_string();
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(f),
                        None => out.push((key, vec![f])),
                    }
                }
                ast::Selection::FragmentSpread(s) => {
                    if !self.included(&s.directives) || visited.iter().any(|v| *v == s.fragment_name.as_str()) {
                        continue;
                    }
                    visited.push(s.fragment_name.to_string());
                    let Some(frag) = doc.fragment(&s.fragment_name) else { continue };
                    if sch::satisfies(self.schema, type_name, &frag.type_condition) {
                        self.collect_into(&frag.selection_set, type_name, out, visited);
                    }
                }
                ast::Selection::InlineFragment(i) => {
                    if !self.included(&i.directives) {
                        continue;
                    }
                    let applies = i.type_condition.as_ref().is_none_or(|c| sch::satisfies(self.schema, type_name, c));
                    if applies {
                        self.collect_into(&i.selection_set, type_name, out, visited);
                    }
                }
            }
        }
    }

    fn included(&self, directives: &ast::DirectiveList) -> bool {
        included(directives, &self.vars)
    }

    fn complete_object(
        &mut self,
        store: &Store,
        obj: &Obj,
        set: &[ast::Selection],
        path: &mut Vec<Out>,
    ) -> Result<Out, ()> {
        let type_name = obj.type_name();
        let grouped = self.collect(set, type_name);
        let mut pairs = Vec::with_capacity(grouped.len());
        for (key, fields) in grouped {
            let field = fields[0];
            if field.name == "__typename" {
                pairs.push((key, Out::str(type_name)));
                continue;
            }
            let Some(def) = sch::field(self.schema, type_name, &field.name) else { continue };
            let mut args = field_arguments(self.schema, &def.arguments, &field.arguments, &self.vars);
            if self.bulk && sch::is_connection(self.schema, def.ty.inner_named_type()) {
                // A bulk query reads every node of its connections: pagination does not apply.
                for k in ["first", "last", "after", "before"] {
                    args.remove(k);
                }
                args.insert(BULK_ALL.to_string(), Value::Bool(true));
            }
            path.push(Out::str(&key));
            self.current_pos = self.doc.pos(field);
            self.current_path = path.clone();
            let resolved = match read::resolve(self, store, obj, &field.name, &Args(&args)) {
                Ok(r) => r,
                Err(e) => {
                    self.field_error(e);
                    Resolved::Null
                }
            };
            let sub = merged_selections(&fields);
            let value = self.complete_value(store, resolved, &def.ty, &sub, path);
            path.pop();
            pairs.push((key, value?));
        }
        Ok(Out::Obj(pairs))
    }

    fn complete_value(
        &mut self,
        store: &Store,
        resolved: Resolved,
        ty: &Type,
        sub: &[ast::Selection],
        path: &mut Vec<Out>,
    ) -> Result<Out, ()> {
        let value = match resolved {
            Resolved::Null => Ok(Out::Null),
            Resolved::Leaf(v) => Ok(v),
            Resolved::Object(o) => self.complete_object(store, &o, sub, path).or(Ok(Out::Null)),
            Resolved::List(items) => {
                let item_ty = if ty.is_list() { ty.item_type() } else { ty };
                let mut out = Vec::with_capacity(items.len());
                let mut failed = false;
                for (i, item) in items.into_iter().enumerate() {
                    path.push(Out::Int(i as i64));
                    match self.complete_value(store, item, item_ty, sub, path) {
                        Ok(v) => out.push(v),
                        Err(()) => failed = true,
                    }
                    path.pop();
                    if failed {
                        break;
                    }
                }
                if failed {
                    Ok(Out::Null)
                } else {
                    Ok(Out::List(out))
                }
            }
        };
        match value {
            Ok(Out::Null) if ty.is_non_null() => {
                if !self.errors.iter().any(|e| e.path.as_deref().is_some_and(|p| p.starts_with(path))) {
                    self.errors.push(
                        GqlError::new(format!("Cannot return null for non-nullable field {}", sch::signature(ty)))
                            .path(path.clone()),
                    );
                }
                Err(())
            }
            other => other,
        }
    }
}

fn merged_selections(fields: &[&apollo_compiler::Node<ast::Field>]) -> Vec<ast::Selection> {
    fields.iter().flat_map(|f| f.selection_set.iter().cloned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Connections

/// The most items a page may hold.
pub const MAX_PAGE: i64 = 250;
/// The argument a bulk query's connections get instead of `first`/`last`: every item.
const BULK_ALL: &str = "__bulk_all";

/// Encodes a cursor the way Shopify's look (base64 of a small JSON object).
pub fn cursor(id: u64, value: &str) -> String {
    let raw = serde_json::json!({ "last_id": id, "last_value": value }).to_string();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The id a cursor points after, if it is one of ours.
pub fn cursor_id(cursor: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::STANDARD.decode(cursor).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("last_id")?.as_u64()
}

/// Whether `@skip`/`@include` keep a selection.
pub fn included(directives: &ast::DirectiveList, vars: &Map<String, Value>) -> bool {
    for d in directives.iter() {
        let flag = d.arguments.iter().find(|a| a.name == "if").map(|a| match &*a.value {
            ast::Value::Boolean(b) => *b,
            ast::Value::Variable(v) => vars.get(v.as_str()).and_then(Value::as_bool).unwrap_or(false),
            _ => false,
        });
        match (d.name.as_str(), flag) {
            ("skip", Some(true)) | ("include", Some(false)) => return false,
            _ => {}
        }
    }
    true
}

/// Pages an ordered list of `(id, node)` with `first`/`after`/`last`/`before`.
pub fn paginate(
    type_name: &'static str,
    edge_type: &'static str,
    items: Vec<(u64, Obj, String)>,
    args: &Args<'_>,
) -> FieldResult {
    let first = args.int("first");
    let last = args.int("last");
    if args.bool(BULK_ALL) == Some(true) {
        let page = items.into_iter().map(|(id, obj, sort_value)| (obj, cursor(id, &sort_value))).collect();
        return Ok(Resolved::Object(Obj::Connection(Box::new(Connection {
            type_name,
            edge_type,
            items: page,
            has_next: false,
            has_previous: false,
        }))));
    }
    if first.is_none() && last.is_none() {
        return Err(FieldError::new("you must provide one of first or last"));
    }
    if let Some(n) = first.or(last) {
        if n < 0 {
            return Err(FieldError::new("first and last must be positive numbers"));
        }
        if n > MAX_PAGE {
            return Err(FieldError::new(format!("The page size exceeds the maximum of {MAX_PAGE}")));
        }
    }
    let position_of = |c: &str| -> Result<Option<usize>, FieldError> {
        let id = cursor_id(c).ok_or_else(|| FieldError::new("Invalid cursor for current pagination sort."))?;
        Ok(items.iter().position(|(i, _, _)| *i == id))
    };
    let mut start = 0usize;
    let mut end = items.len();
    if let Some(after) = args.str("after") {
        start = position_of(after)?.map_or(items.len(), |p| p + 1);
    }
    if let Some(before) = args.str("before") {
        end = position_of(before)?.unwrap_or(items.len()).max(start);
    }
    let mut lo = start;
    let mut hi = end.max(start);
    if let Some(f) = first {
        hi = hi.min(lo + f as usize);
    }
    if let Some(l) = last {
        lo = lo.max(hi.saturating_sub(l as usize));
    }
    let has_next = hi < items.len();
    let has_previous = lo > 0;
    let page = items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i >= lo && *i < hi)
        .map(|(_, (id, obj, sort_value))| (obj, cursor(id, &sort_value)))
        .collect();
    Ok(Resolved::Object(Obj::Connection(Box::new(Connection {
        type_name,
        edge_type,
        items: page,
        has_next,
        has_previous,
    }))))
}

/// Fields of connection, edge and page-info values.
pub fn resolve_connection(c: &Connection, field: &str) -> FieldResult {
    Ok(match field {
        "nodes" => Resolved::list(c.items.iter().map(|(o, _)| Resolved::Object(o.clone()))),
        "edges" => Resolved::list(c.items.iter().map(|(o, cur)| {
            Resolved::fields(
                c.edge_type,
                vec![("cursor", Resolved::str(cur.clone())), ("node", Resolved::Object(o.clone()))],
            )
        })),
        "pageInfo" => Resolved::fields(
            "PageInfo",
            vec![
                ("hasNextPage", Resolved::bool(c.has_next)),
                ("hasPreviousPage", Resolved::bool(c.has_previous)),
                ("startCursor", Resolved::opt_str(c.items.first().map(|(_, cur)| cur.clone()))),
                ("endCursor", Resolved::opt_str(c.items.last().map(|(_, cur)| cur.clone()))),
            ],
        ),
        other => return Err(FieldError::new(format!("unknown connection field `{other}`"))),
    })
}

/// Picks the operation to run (by `operationName` when the document has several).
pub fn select_operation<'d>(
    doc: &'d Document,
    name: Option<&str>,
) -> Result<&'d apollo_compiler::Node<ast::OperationDefinition>, GqlError> {
    let ops: Vec<_> = doc.operations().collect();
    match name.filter(|n| !n.is_empty()) {
        Some(n) => ops
            .into_iter()
            .find(|o| o.name.as_ref().is_some_and(|x| x == n))
            .ok_or_else(|| GqlError::new(format!("No operation named \"{n}\""))),
        None => match ops.as_slice() {
            [one] => Ok(one),
            [] => Err(GqlError::new("No operations in query document")),
            _ => Err(GqlError::new("An operation name is required")),
        },
    }
}
