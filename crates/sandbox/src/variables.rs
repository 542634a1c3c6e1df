//! Input values: coercion of request variables (failures as Shopify's `INVALID_VARIABLE` errors
//! with `problems`), and the argument values a field receives once literals and variables are
//! resolved. Coerced values are `serde_json::Value`s: enums as strings, `ID`s as strings.

use apollo_compiler::ast::{self, Type};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Node, Schema};
use serde_json::{Map, Value};

use super::document::Document;
use super::response::{GqlError, Out};
use super::schema as sch;

/// One problem found while coercing a variable: where inside it, and what is wrong.
struct Problem {
    path: Vec<Value>,
    explanation: String,
}

/// Coerces the request's `variables` for `op`, or returns one error per invalid variable.
pub fn coerce_variables(
    schema: &Schema,
    doc: &Document,
    op: &ast::OperationDefinition,
    provided: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<GqlError>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for def in &op.variables {
        let name = def.name.as_str();
        let given = provided.get(name);
        let value = match given {
            None => def.default_value.as_ref().map(|d| literal_to_json(schema, d, &def.ty, &Map::new())),
            Some(v) => Some(v.clone()),
        };
        let mut problems = Vec::new();
        match &value {
            None | Some(Value::Null) => {
                if def.ty.is_non_null() {
                    problems
                        .push(Problem { path: Vec::new(), explanation: "Expected value to not be null".to_string() });
                } else if given.is_some() {
                    out.insert(name.to_string(), Value::Null);
                }
            }
            Some(v) => match coerce(schema, v, &def.ty, &mut Vec::new(), &mut problems) {
                Some(c) if problems.is_empty() => {
                    out.insert(name.to_string(), c);
                }
                _ => {}
            },
        }
        if !problems.is_empty() {
            let details: Vec<String> = problems
                .iter()
                .filter(|p| !p.path.is_empty())
                .map(|p| format!("{} ({})", path_text(&p.path), p.explanation))
                .collect();
            let mut message =
                format!("Variable ${name} of type {} was provided invalid value", sch::signature(&def.ty));
            if !details.is_empty() {
                message.push_str(" for ");
                message.push_str(&details.join(", "));
            }
            let problems_out = Out::List(
                problems
                    .iter()
                    .map(|p| {
                        Out::obj([
                            ("path", Out::List(p.path.iter().map(Out::from).collect())),
                            ("explanation", Out::str(&p.explanation)),
                        ])
                    })
                    .collect(),
            );
            errors.push(
                GqlError::new(message)
                    .at(doc.pos(def))
                    .code("INVALID_VARIABLE")
                    .ext("value", given.map_or(Out::Null, Out::from))
                    .ext("problems", problems_out),
            );
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn path_text(path: &[Value]) -> String {
    path.iter()
        .map(|p| match p {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Coerces a JSON value to `ty`, recording problems (with paths relative to the variable).
fn coerce(
    schema: &Schema,
    value: &Value,
    ty: &Type,
    path: &mut Vec<Value>,
    problems: &mut Vec<Problem>,
) -> Option<Value> {
    if value.is_null() {
        if ty.is_non_null() {
            problems.push(Problem { path: path.clone(), explanation: "Expected value to not be null".to_string() });
            return None;
        }
        return Some(Value::Null);
    }
    if ty.is_list() {
        let item = ty.item_type();
        return match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    path.push(Value::from(i));
                    let c = coerce(schema, it, item, path, problems);
                    path.pop();
                    out.push(c.unwrap_or(Value::Null));
                }
                Some(Value::Array(out))
            }
            single => coerce(schema, single, item, path, problems).map(|v| Value::Array(vec![v])),
        };
    }
    let named = ty.inner_named_type().as_str();
    match schema.types.get(named) {
        Some(ExtendedType::InputObject(io)) => {
            let Value::Object(map) = value else {
                problems.push(Problem {
                    path: path.clone(),
                    explanation: format!("Expected {value} to be a key-value object."),
                });
                return None;
            };
            // As graphql-ruby: unknown keys first, then the type's fields in definition order.
            let mut out = Map::new();
            for k in map.keys() {
                if !io.fields.contains_key(k.as_str()) {
                    problems.push(Problem {
                        path: [path.as_slice(), &[Value::from(k.clone())]].concat(),
                        explanation: format!("Field is not defined on {named}"),
                    });
                }
            }
            for (fname, def) in &io.fields {
                match map.get(fname.as_str()) {
                    Some(v) => {
                        path.push(Value::from(fname.to_string()));
                        if let Some(c) = coerce(schema, v, &def.ty, path, problems) {
                            out.insert(fname.to_string(), c);
                        }
                        path.pop();
                    }
                    None => {
                        if let Some(d) = &def.default_value {
                            out.insert(fname.to_string(), literal_to_json(schema, d, &def.ty, &Map::new()));
                        } else if def.ty.is_non_null() {
                            problems.push(Problem {
                                path: [path.as_slice(), &[Value::from(fname.to_string())]].concat(),
                                explanation: "Expected value to not be null".to_string(),
                            });
                        }
                    }
                }
            }
            Some(Value::Object(out))
        }
        Some(ExtendedType::Enum(e)) => match value {
            Value::String(s) if e.values.contains_key(s.as_str()) => Some(value.clone()),
            _ => {
                let names: Vec<&str> = e.values.keys().map(|k| k.as_str()).collect();
                problems.push(Problem {
                    path: path.clone(),
                    explanation: format!("Expected {value} to be one of: {}", names.join(", ")),
                });
                None
            }
        },
        _ => match coerce_scalar(named, value) {
            Some(v) => Some(v),
            None => {
                problems.push(Problem {
                    path: path.clone(),
                    explanation: format!("Could not coerce value {value} to {named}"),
                });
                None
            }
        },
    }
}

fn coerce_scalar(scalar: &str, value: &Value) -> Option<Value> {
    match (scalar, value) {
        ("Int", Value::Number(n)) => n.as_i64().filter(|i| i32::try_from(*i).is_ok()).map(Value::from),
        ("Float", Value::Number(n)) => n.as_f64().map(Value::from),
        ("Boolean", Value::Bool(_)) => Some(value.clone()),
        ("ID", Value::String(_)) => Some(value.clone()),
        ("ID", Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::String(n.to_string())),
        ("Money" | "Decimal", Value::String(s)) if s.trim().parse::<f64>().is_ok() => Some(value.clone()),
        ("Money" | "Decimal", Value::Number(n)) => Some(Value::String(n.to_string())),
        ("UnsignedInt64", Value::String(s)) if s.parse::<u64>().is_ok() => Some(value.clone()),
        ("UnsignedInt64", Value::Number(n)) if n.is_u64() => Some(Value::String(n.to_string())),
        ("DateTime", Value::String(s)) if crate::store::parse_time(s).is_some() => Some(value.clone()),
        ("String" | "HTML" | "URL", Value::String(_)) => Some(value.clone()),
        _ => None,
    }
}

/// Converts a (validated) literal to JSON, substituting variables; input-object defaults are
/// filled in.
pub fn literal_to_json(schema: &Schema, value: &Node<ast::Value>, ty: &Type, vars: &Map<String, Value>) -> Value {
    use ast::Value as V;
    match &**value {
        V::Null => Value::Null,
        V::Variable(name) => vars.get(name.as_str()).cloned().unwrap_or(Value::Null),
        V::Enum(name) => Value::String(name.to_string()),
        V::String(s) => Value::String(s.clone()),
        V::Boolean(b) => Value::Bool(*b),
        V::Int(i) => {
            let named = ty.inner_named_type().as_str();
            if matches!(named, "ID" | "Money" | "Decimal" | "UnsignedInt64") {
                Value::String(i.as_str().to_string())
            } else if named == "Float" {
                Value::from(i.try_to_f64().unwrap_or(0.0))
            } else {
                i.as_str().parse::<i64>().map(Value::from).unwrap_or(Value::Null)
            }
        }
        V::Float(f) => {
            if matches!(ty.inner_named_type().as_str(), "Money" | "Decimal") {
                Value::String(f.as_str().to_string())
            } else {
                Value::from(f.try_to_f64().unwrap_or(0.0))
            }
        }
        V::List(items) => {
            let item_ty = if ty.is_list() { ty.item_type() } else { ty };
            Value::Array(items.iter().map(|i| literal_to_json(schema, i, item_ty, vars)).collect())
        }
        V::Object(fields) => {
            let named = ty.inner_named_type().as_str();
            let mut out = Map::new();
            let defs = sch::input_fields(schema, named).unwrap_or_default();
            for (k, v) in fields {
                let field_ty = defs.iter().find(|d| d.name == *k).map(|d| d.ty.as_ref().clone());
                let field_ty = field_ty.unwrap_or_else(|| ty.clone());
                // An absent nullable variable leaves the field out.
                if let V::Variable(var) = &**v {
                    if !vars.contains_key(var.as_str()) {
                        continue;
                    }
                }
                out.insert(k.to_string(), literal_to_json(schema, v, &field_ty, vars));
            }
            for d in defs {
                if !out.contains_key(d.name.as_str()) {
                    if let Some(default) = &d.default_value {
                        out.insert(d.name.to_string(), literal_to_json(schema, default, &d.ty, vars));
                    }
                }
            }
            if ty.is_list() {
                Value::Array(vec![Value::Object(out)])
            } else {
                Value::Object(out)
            }
        }
    }
}

/// The arguments a field receives: given literals and variables, then defaults. An argument
/// whose variable was not provided is left out (as if not given).
pub fn field_arguments(
    schema: &Schema,
    defs: &[Node<ast::InputValueDefinition>],
    given: &[Node<ast::Argument>],
    vars: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for def in defs {
        let arg = given.iter().find(|a| a.name == def.name);
        let value = match arg {
            Some(a) => match &*a.value {
                ast::Value::Variable(v) if !vars.contains_key(v.as_str()) => None,
                _ => Some(literal_to_json(schema, &a.value, &def.ty, vars)),
            },
            None => None,
        };
        let value = value.or_else(|| def.default_value.as_ref().map(|d| literal_to_json(schema, d, &def.ty, vars)));
        if let Some(v) = value {
            out.insert(def.name.to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;
    use crate::schema::schema;
    use serde_json::json;

    fn run(src: &str, vars: Value) -> Result<Map<String, Value>, Vec<String>> {
        let doc = parse(src).unwrap();
        let op = doc.operations().next().unwrap().clone();
        coerce_variables(schema(), &doc, &op, vars.as_object().unwrap())
            .map_err(|es| es.into_iter().map(|e| e.to_out().to_json_string()).collect())
    }

    #[test]
    fn missing_required_fields_are_reported_like_shopify() {
        let e = run(
            "mutation ProductDelete($input: ProductDeleteInput!) { productDelete(input: $input) { deletedProductId } }",
            json!({"input": {}}),
        )
        .unwrap_err();
        assert_eq!(
            e,
            vec![
                r#"{"message":"Variable $input of type ProductDeleteInput! was provided invalid value for id (Expected value to not be null)","locations":[{"line":1,"column":24}],"extensions":{"code":"INVALID_VARIABLE","value":{},"problems":[{"path":["id"],"explanation":"Expected value to not be null"}]}}"#
            ]
        );
    }

    #[test]
    fn a_missing_variable_is_reported_like_shopify() {
        let e = run(
            "mutation M($product: ProductCreateInput!) { productCreate(product: $product) { product { id } } }",
            json!({}),
        )
        .unwrap_err();
        assert!(
            e[0].contains(r#""message":"Variable $product of type ProductCreateInput! was provided invalid value""#),
            "{e:?}"
        );
        assert!(
            e[0].contains(r#""value":null,"problems":[{"path":[],"explanation":"Expected value to not be null"}]"#),
            "{e:?}"
        );
    }

    #[test]
    fn enums_and_unknown_fields_are_reported() {
        let e = run(
            "mutation M($input: CollectionInput!) { collectionCreate(input: $input) { collection { id } } }",
            json!({"input": {"title": "t", "sortOrder": "NOPE", "foo": 1}}),
        )
        .unwrap_err();
        assert!(
            e[0].contains("for foo (Field is not defined on CollectionInput), sortOrder (Expected \\\"NOPE\\\" to be one of: ALPHA_ASC"),
            "{e:?}"
        );
    }

    #[test]
    fn defaults_are_applied() {
        let v = run(
            "mutation M($input: CollectionInput!) { collectionCreate(input: $input) { collection { id } } }",
            json!({"input": {"title": "t"}}),
        )
        .unwrap();
        assert_eq!(v["input"]["redirectNewHandle"], json!(false));
    }
}
