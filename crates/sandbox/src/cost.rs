//! Query cost and the leaky bucket. Costs follow Shopify's published rules, calibrated on the
//! recorded captures:
//!
//! - scalars and enums cost 0; an object costs 1; a list of objects costs like one element;
//! - a connection costs 2 plus `ceil(sqrt(n))` times the cost of one node, where `n` is the
//!   `first`/`last` argument (requested) or the number of nodes returned (actual); `edges`,
//!   `nodes` and `pageInfo` add nothing of their own;
//! - a mutation costs 10, its payload's own fields are free (nested objects are not), and
//!   `productSet` adds 0.2 per variant, 0.4 per metafield, 1.9 per file and 0.6 per variant
//!   file of its input (the schema's complexity notes);
//! - the actual cost drops the sub-selections of objects that came back null and shrinks
//!   connections to what they returned; the difference is refunded to the bucket.
//!
//! The bucket holds `maximumAvailable` points and restores `restoreRate` per second; a request
//! whose requested cost exceeds what is available is throttled (HTTP 200, `THROTTLED`).

use std::time::Instant;

use apollo_compiler::ast::{self, OperationType};
use apollo_compiler::Schema;
use serde_json::{Map, Value};

use super::document::Document;
use super::execute::included;
use super::response::Out;
use super::schema::{self as sch, MUTATION_ROOT, QUERY_ROOT};
use super::variables::field_arguments;

/// The largest requested cost a single query may have.
pub const MAX_QUERY_COST: u64 = 1000;
/// What every mutation costs before its selection.
const MUTATION_COST: f64 = 10.0;

/// The requested cost of an operation, rounded to an integer as Shopify reports it.
pub fn requested(schema: &Schema, doc: &Document, op: &ast::OperationDefinition, vars: &Map<String, Value>) -> u64 {
    let c = Costing { schema, doc, vars };
    c.operation(op, None).round().max(0.0) as u64
}

/// The actual cost, given the `data` the operation produced.
pub fn actual(
    schema: &Schema,
    doc: &Document,
    op: &ast::OperationDefinition,
    vars: &Map<String, Value>,
    data: &Out,
) -> u64 {
    let c = Costing { schema, doc, vars };
    c.operation(op, Some(data)).round().max(0.0) as u64
}

struct Costing<'a> {
    schema: &'a Schema,
    doc: &'a Document,
    vars: &'a Map<String, Value>,
}

impl<'a> Costing<'a> {
    fn operation(&self, op: &ast::OperationDefinition, data: Option<&Out>) -> f64 {
        let (root, mutation) = match op.operation_type {
            OperationType::Mutation => (MUTATION_ROOT, true),
            _ => (QUERY_ROOT, false),
        };
        let mut total = 0.0;
        for f in self.fields(&op.selection_set) {
            let key = f.alias.as_ref().unwrap_or(&f.name).to_string();
            let result = data.map(|d| d.get(&key).unwrap_or(&Out::Null));
            if mutation {
                if f.name == "__typename" {
                    continue;
                }
                let mut cost = MUTATION_COST + self.input_cost(root, f);
                if let Some(def) = sch::field(self.schema, root, &f.name) {
                    if result.is_none_or(|r| !r.is_null()) {
                        // The payload's own fields are covered by the mutation's cost.
                        cost += self.children(&f.selection_set, def.ty.inner_named_type(), result, true);
                    }
                }
                total += cost;
            } else {
                total += self.field(f, root, result);
            }
        }
        total
    }

    /// productSet's input-size surcharge.
    fn input_cost(&self, parent: &str, f: &ast::Field) -> f64 {
        if f.name != "productSet" {
            return 0.0;
        }
        let Some(def) = sch::field(self.schema, parent, &f.name) else { return 0.0 };
        let args = field_arguments(self.schema, &def.arguments, &f.arguments, self.vars);
        let input = args.get("input");
        let count = |name: &str| input.and_then(|i| i.get(name)).and_then(Value::as_array).map_or(0, Vec::len) as f64;
        let variants = input.and_then(|i| i.get("variants")).and_then(Value::as_array);
        let variant_metafields: f64 = variants
            .map(|vs| {
                vs.iter().map(|v| v.get("metafields").and_then(Value::as_array).map_or(0, Vec::len)).sum::<usize>()
            })
            .unwrap_or(0) as f64;
        let variant_files = variants
            .map(|vs| vs.iter().filter(|v| v.get("file").is_some_and(|f| !f.is_null())).count())
            .unwrap_or(0) as f64;
        0.2 * count("variants")
            + 0.4 * (count("metafields") + variant_metafields)
            + 1.9 * count("files")
            + 0.6 * variant_files
    }

    /// The fields of a selection set, fragments flattened (for every possible type: costs are
    /// worst cases).
    fn fields<'d>(&self, set: &'d [ast::Selection]) -> Vec<&'d ast::Field>
    where
        'a: 'd,
    {
        let mut out = Vec::new();
        self.flatten(set, &mut out, 0);
        out
    }

    fn flatten<'d>(&self, set: &'d [ast::Selection], out: &mut Vec<&'d ast::Field>, depth: usize)
    where
        'a: 'd,
    {
        let doc: &'a Document = self.doc;
        if depth > 32 {
            return;
        }
        for sel in set {
            let directives = match sel {
                ast::Selection::Field(f) => &f.directives,
                ast::Selection::InlineFragment(i) => &i.directives,
                ast::Selection::FragmentSpread(s) => &s.directives,
            };
            if !included(directives, self.vars) {
                continue;
            }
            match sel {
                ast::Selection::Field(f) => {
                    if !out.iter().any(|x: &&ast::Field| x.alias == f.alias && x.name == f.name) {
                        out.push(f);
                    }
                }
                ast::Selection::InlineFragment(i) => self.flatten(&i.selection_set, out, depth + 1),
                ast::Selection::FragmentSpread(s) => {
                    if let Some(frag) = doc.fragment(&s.fragment_name) {
                        self.flatten(&frag.selection_set, out, depth + 1);
                    }
                }
            }
        }
    }

    /// The cost of the children of an object of type `ty` (`payload` makes its own object
    /// fields free).
    fn children(&self, set: &[ast::Selection], ty: &str, result: Option<&Out>, payload: bool) -> f64 {
        let mut total = 0.0;
        for f in self.fields(set) {
            if f.name == "__typename" {
                continue;
            }
            let key = f.alias.as_ref().unwrap_or(&f.name).to_string();
            let child = result.map(|r| r.get(&key).unwrap_or(&Out::Null));
            let cost = self.field(f, &field_owner(self.schema, ty, &f.name), child);
            total += if payload { cost - self.own_cost(ty, &f.name) } else { cost };
        }
        total
    }

    /// What a field costs itself (1 for object-typed fields, 0 otherwise).
    fn own_cost(&self, parent: &str, name: &str) -> f64 {
        let Some(def) = sch::field(self.schema, &field_owner(self.schema, parent, name), name) else { return 0.0 };
        let named = def.ty.inner_named_type().as_str();
        if sch::is_connection(self.schema, named) {
            0.0
        } else if sch::is_composite(self.schema, named) {
            1.0
        } else {
            0.0
        }
    }

    fn field(&self, f: &ast::Field, parent: &str, result: Option<&Out>) -> f64 {
        let Some(def) = sch::field(self.schema, parent, &f.name) else { return 0.0 };
        let named = def.ty.inner_named_type().as_str();
        if sch::is_connection(self.schema, named) {
            let args = field_arguments(self.schema, &def.arguments, &f.arguments, self.vars);
            let requested_n =
                args.get("first").or_else(|| args.get("last")).and_then(Value::as_i64).unwrap_or(0).max(0);
            let (n, nodes) = match result {
                None => (requested_n as usize, None),
                Some(Out::Null) => return 2.0,
                Some(r) => {
                    let nodes = r.get("nodes").and_then(|n| match n {
                        Out::List(l) => Some(l.len()),
                        _ => None,
                    });
                    let edges = r.get("edges").and_then(|n| match n {
                        Out::List(l) => Some(l.len()),
                        _ => None,
                    });
                    let n = nodes.or(edges).unwrap_or(0);
                    (n, Some(r))
                }
            };
            let node_cost = self.node_cost(&f.selection_set, named, nodes);
            return 2.0 + (n as f64).sqrt().ceil() * node_cost;
        }
        if !sch::is_composite(self.schema, named) {
            return 0.0;
        }
        match result {
            Some(Out::Null) => 1.0,
            Some(Out::List(items)) if items.is_empty() => 1.0,
            Some(Out::List(items)) => 1.0 + self.children(&f.selection_set, named, items.first(), false),
            other => 1.0 + self.children(&f.selection_set, named, other, false),
        }
    }

    /// The cost of one node of a connection: 1 plus the larger of what `nodes { … }` and
    /// `edges { node { … } }` select.
    fn node_cost(&self, set: &[ast::Selection], connection: &str, result: Option<&Out>) -> f64 {
        let Some(node_def) = sch::field(self.schema, connection, "nodes") else { return 1.0 };
        let node_type = node_def.ty.inner_named_type().as_str();
        // For the actual cost, a returned node stands for all of them (the count multiplies).
        let first = |key: &str| -> Option<Out> {
            match result?.get(key)? {
                Out::List(l) => l.first().cloned(),
                _ => None,
            }
        };
        let sample = |node: Option<Out>| result.map(|_| node.unwrap_or(Out::Null));
        let mut best: f64 = 0.0;
        for f in self.fields(set) {
            let key = f.alias.as_ref().unwrap_or(&f.name).to_string();
            match f.name.as_str() {
                "nodes" => {
                    let node = sample(first(&key));
                    best = best.max(self.children(&f.selection_set, node_type, node.as_ref(), false));
                }
                "edges" => {
                    for e in self.fields(&f.selection_set) {
                        if e.name == "node" {
                            let ekey = e.alias.as_ref().unwrap_or(&e.name).to_string();
                            let node = sample(first(&key).and_then(|edge| edge.get(&ekey).cloned()));
                            best = best.max(self.children(&e.selection_set, node_type, node.as_ref(), false));
                        }
                    }
                }
                _ => {}
            }
        }
        1.0 + best
    }
}

/// For interface/union-typed parents, the type that defines `name` (any possible type).
fn field_owner(schema: &Schema, parent: &str, name: &str) -> String {
    if sch::field(schema, parent, name).is_some() {
        return parent.to_string();
    }
    sch::possible_types(schema, parent)
        .into_iter()
        .find(|t| sch::field(schema, t, name).is_some())
        .unwrap_or_else(|| parent.to_string())
}

/// Shopify's leaky bucket of cost points.
#[derive(Debug, Clone)]
pub struct LeakyBucket {
    capacity: f64,
    restore_rate: f64,
    available: f64,
    last: Instant,
}

/// A snapshot for `extensions.cost.throttleStatus`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

impl LeakyBucket {
    /// A full bucket.
    pub fn new(capacity: f64, restore_rate: f64) -> Self {
        LeakyBucket { capacity, restore_rate, available: capacity, last: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_rate).min(self.capacity);
        self.last = now;
    }

    /// Takes `cost` points if available; otherwise leaves the bucket as it is.
    pub fn try_take(&mut self, cost: f64) -> bool {
        self.refill();
        if cost > self.available {
            return false;
        }
        self.available -= cost;
        true
    }

    /// Gives back the difference between requested and actual cost.
    pub fn refund(&mut self, points: f64) {
        self.refill();
        self.available = (self.available + points).min(self.capacity);
    }

    /// The bucket now.
    pub fn status(&mut self) -> ThrottleStatus {
        self.refill();
        ThrottleStatus {
            maximum_available: self.capacity,
            currently_available: self.available,
            restore_rate: self.restore_rate,
        }
    }
}

/// `extensions.cost` as Shopify prints it.
pub fn extension(requested: u64, actual: Option<u64>, status: ThrottleStatus) -> Out {
    let num = |v: f64| if v.fract() == 0.0 { Out::Int(v as i64) } else { Out::Float(v) };
    Out::obj([(
        "cost",
        Out::obj([
            ("requestedQueryCost", Out::Int(requested as i64)),
            ("actualQueryCost", actual.map_or(Out::Null, |a| Out::Int(a as i64))),
            (
                "throttleStatus",
                Out::obj([
                    ("maximumAvailable", num(status.maximum_available)),
                    ("currentlyAvailable", Out::Int(status.currently_available.floor() as i64)),
                    ("restoreRate", num(status.restore_rate)),
                ]),
            ),
        ]),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;
    use crate::schema::schema;
    use serde_json::json;

    fn cost(src: &str, vars: Value) -> u64 {
        let doc = parse(src).unwrap();
        let op = doc.operations().next().unwrap().clone();
        requested(schema(), &doc, &op, vars.as_object().unwrap())
    }

    #[test]
    fn costs_match_the_captures() {
        // Recorded: products(first: 1) { nodes { id title status } } costs 3.
        assert_eq!(
            cost(
                "query Q($q: String!) { products(first: 1, query: $q) { nodes { id title status } } }",
                json!({"q": "x"})
            ),
            3
        );
        // Recorded: a mutation with a flat payload costs 10.
        assert_eq!(
            cost(
                "mutation { productDelete(input: {id: \"x\"}) { deletedProductId userErrors { field message } } }",
                json!({})
            ),
            10
        );
        // Recorded: stagedUploadsCreate with parameters costs 11.
        assert_eq!(
            cost("mutation M($input: [StagedUploadInput!]!) { stagedUploadsCreate(input: $input) { stagedTargets { url resourceUrl parameters { name value } } userErrors { field message } } }", json!({"input": []})),
            11
        );
        // Recorded: productSet with a nested operation costs 12.
        assert_eq!(
            cost("mutation M($input: ProductSetInput!) { productSet(input: $input, synchronous: false) { product { id } productSetOperation { id status product { id title handle } userErrors { field message code } } userErrors { field message code } } }", json!({"input": {"title": "t"}})),
            12
        );
        // Recorded: productSet with options and variants(first: 20) costs 24.
        assert_eq!(
            cost("mutation M($input: ProductSetInput!) { productSet(input: $input) { product { id title status options { id name position values optionValues { id name hasVariants } } variants(first: 20) { nodes { id title selectedOptions { name value } } } } userErrors { field message } } }", json!({"input": {"title": "t"}})),
            24
        );
        // Recorded: 2049 variants cost 420 (10 + 0.2 each).
        let variants: Vec<Value> =
            (0..2049).map(|i| json!({"optionValues": [{"optionName": "Title", "name": format!("V{i}")}]})).collect();
        assert_eq!(
            cost("mutation M($input: ProductSetInput!) { productSet(input: $input) { product { id } userErrors { field message code } } }", json!({"input": {"title": "t", "variants": variants}})),
            420
        );
        // Recorded: shopLocales + translatableResource with translations and market costs 5.
        assert_eq!(
            cost("query R($id: ID!) { shopLocales { locale name primary published } translatableResource(resourceId: $id) { resourceId translatableContent { key value digest locale type } translations(locale: \"fr\") { key value locale outdated market { id } } } }", json!({"id": "gid://shopify/Product/1"})),
            5
        );
    }

    #[test]
    fn skipped_selections_cost_nothing() {
        let q = "query Q($all: Boolean!) { shop { id } products(first: 100) @include(if: $all) { nodes { id } } }";
        assert_eq!(cost(q, json!({"all": false})), 1);
        assert_eq!(cost(q, json!({"all": true})), 13);
    }

    #[test]
    fn the_bucket_throttles_and_restores() {
        let mut b = LeakyBucket::new(20.0, 1000.0);
        assert!(b.try_take(15.0));
        assert!(!b.try_take(15.0));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(b.try_take(15.0));
        let s = extension(
            10,
            None,
            ThrottleStatus { maximum_available: 2000.0, currently_available: 1990.4, restore_rate: 100.0 },
        );
        assert_eq!(
            s.to_json_string(),
            r#"{"cost":{"requestedQueryCost":10,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":2000,"currentlyAvailable":1990,"restoreRate":100}}}"#
        );
    }
}
