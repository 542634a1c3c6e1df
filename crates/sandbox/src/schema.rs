//! The schema the sandbox serves: `schema.graphql` (a subset of Shopify's Admin API 2026-07),
//! parsed and validated once, plus the type questions validation, execution and costing ask.

use std::sync::OnceLock;

use apollo_compiler::ast::Type;
use apollo_compiler::schema::{ExtendedType, FieldDefinition, InputValueDefinition};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Node, Schema};

/// The SDL of the subset, embedded in the binary.
pub const SDL: &str = include_str!("schema.graphql");

/// The name of the query root type (Shopify calls it `QueryRoot`).
pub const QUERY_ROOT: &str = "QueryRoot";
/// The name of the mutation root type.
pub const MUTATION_ROOT: &str = "Mutation";

/// The parsed subset. Panics only if the embedded SDL is invalid, which a unit test rules out.
pub fn schema() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| match Schema::parse_and_validate(SDL, "schema.graphql") {
        Ok(s) => s,
        Err(e) => panic!("the embedded sandbox schema is invalid: {}", e.errors),
    })
}

/// The definition of field `field` on object or interface type `ty`, including the meta field
/// `__typename`.
pub fn field<'s>(schema: &'s Schema, ty: &str, field: &str) -> Option<&'s Node<FieldDefinition>> {
    match schema.types.get(ty)? {
        ExtendedType::Object(o) => o.fields.get(field).map(|c| &c.node),
        ExtendedType::Interface(i) => i.fields.get(field).map(|c| &c.node),
        _ => None,
    }
}

/// Whether `ty` is an object, interface or union (a type with selections).
pub fn is_composite(schema: &Schema, ty: &str) -> bool {
    matches!(schema.types.get(ty), Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_)))
}

/// Whether `ty` is a connection type (`…Connection` with `pageInfo`): paginated by `first`/
/// `last`, costed per node, and split into lines of their own by bulk queries.
pub fn is_connection(schema: &Schema, ty: &str) -> bool {
    ty.ends_with("Connection")
        && matches!(schema.types.get(ty), Some(ExtendedType::Object(o)) if o.fields.contains_key("pageInfo"))
}

/// Whether `ty` is a scalar or an enum.
pub fn is_leaf(schema: &Schema, ty: &str) -> bool {
    matches!(schema.types.get(ty), Some(ExtendedType::Scalar(_) | ExtendedType::Enum(_)))
}

/// Whether `ty` may appear as a variable or argument type.
pub fn is_input(schema: &Schema, ty: &str) -> bool {
    matches!(schema.types.get(ty), Some(ExtendedType::Scalar(_) | ExtendedType::Enum(_) | ExtendedType::InputObject(_)))
}

/// The object types an object, interface or union type may resolve to.
pub fn possible_types(schema: &Schema, ty: &str) -> Vec<String> {
    match schema.types.get(ty) {
        Some(ExtendedType::Object(_)) => vec![ty.to_string()],
        Some(ExtendedType::Union(u)) => u.members.iter().map(|m| m.name.to_string()).collect(),
        Some(ExtendedType::Interface(_)) => schema
            .types
            .iter()
            .filter_map(|(name, def)| match def {
                ExtendedType::Object(o) if o.implements_interfaces.iter().any(|i| i.name == ty) => {
                    Some(name.to_string())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a fragment on `condition` can apply inside a selection on `parent` (their possible
/// types intersect).
pub fn can_spread(schema: &Schema, condition: &str, parent: &str) -> bool {
    let inner = possible_types(schema, condition);
    possible_types(schema, parent).iter().any(|t| inner.contains(t))
}

/// Whether a value of object type `object` satisfies a fragment type condition.
pub fn satisfies(schema: &Schema, object: &str, condition: &str) -> bool {
    object == condition || possible_types(schema, condition).iter().any(|t| t == object)
}

/// The arguments of an input object type.
pub fn input_fields<'s>(schema: &'s Schema, ty: &str) -> Option<Vec<&'s Node<InputValueDefinition>>> {
    match schema.types.get(ty)? {
        ExtendedType::InputObject(io) => Some(io.fields.values().map(|c| &c.node).collect()),
        _ => None,
    }
}

/// The values of an enum type, in schema order.
pub fn enum_values(schema: &Schema, ty: &str) -> Option<Vec<String>> {
    match schema.types.get(ty)? {
        ExtendedType::Enum(e) => Some(e.values.keys().map(|k| k.to_string()).collect()),
        _ => None,
    }
}

/// GraphQL's type signature (`[ID!]!`).
pub fn signature(ty: &Type) -> String {
    ty.to_string()
}

/// Whether a variable of type `var` (with or without a default) may be used where `loc` is
/// expected (the spec's "AreTypesCompatible").
pub fn compatible(var: &Type, loc: &Type, has_default: bool) -> bool {
    match (loc, var) {
        (Type::NonNullNamed(_) | Type::NonNullList(_), v) if !v.is_non_null() => {
            has_default && compatible(v, &loc.clone().nullable(), false)
        }
        (Type::NonNullNamed(l), Type::NonNullNamed(v)) => l == v,
        (Type::NonNullList(l), Type::NonNullList(v)) => compatible(v, l, false),
        (Type::NonNullNamed(_) | Type::NonNullList(_), _) => false,
        (Type::Named(l), Type::Named(v) | Type::NonNullNamed(v)) => l == v,
        (Type::List(l), Type::List(v) | Type::NonNullList(v)) => compatible(v, l, false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_schema_is_valid() {
        let s = schema();
        assert!(field(s, QUERY_ROOT, "products").is_some());
        assert!(field(s, MUTATION_ROOT, "productSet").is_some());
        assert_eq!(possible_types(s, "ProductOperation"), vec!["ProductSetOperation".to_string()]);
    }

    #[test]
    fn variable_compatibility_follows_the_spec() {
        let id = Type::Named(apollo_compiler::name!("ID"));
        let id_nn = id.clone().non_null();
        assert!(compatible(&id_nn, &id, false));
        assert!(!compatible(&id, &id_nn, false));
        assert!(compatible(&id, &id_nn, true));
        let list = Type::List(Box::new(id_nn.clone())).non_null();
        assert!(!compatible(&id_nn, &list, false));
    }
}
