//! The sandbox's schema subset agrees with the real Admin schema: every type, field, argument,
//! input field and enum value it declares exists in `admin-2026-07.graphql` with the same type
//! (and the same default), and every interface it implements is implemented there too.

use apollo_compiler::schema::ExtendedType;
use apollo_compiler::Schema;

const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/shopify/admin-2026-07.graphql");

fn parse(sdl: &str, name: &str) -> Schema {
    match Schema::parse(sdl, name) {
        Ok(s) => s,
        Err(with_errors) => with_errors.partial,
    }
}

/// Every way `subset` departs from `real`.
fn disagreements(subset: &Schema, real: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for (name, ty) in &subset.types {
        if ty.is_built_in() {
            continue;
        }
        let Some(real_ty) = real.types.get(name) else {
            out.push(format!("type `{name}` does not exist"));
            continue;
        };
        match (ty, real_ty) {
            (ExtendedType::Object(o), ExtendedType::Object(r)) => {
                for i in &o.implements_interfaces {
                    if !r.implements_interfaces.contains(i) {
                        out.push(format!("`{name}` does not implement `{}`", i.name));
                    }
                }
                fields(
                    name,
                    o.fields.iter().map(|(k, v)| (k, &v.node)),
                    |f| r.fields.get(f).map(|c| &c.node),
                    &mut out,
                );
            }
            (ExtendedType::Interface(o), ExtendedType::Interface(r)) => {
                fields(
                    name,
                    o.fields.iter().map(|(k, v)| (k, &v.node)),
                    |f| r.fields.get(f).map(|c| &c.node),
                    &mut out,
                );
            }
            (ExtendedType::InputObject(o), ExtendedType::InputObject(r)) => {
                for (f, def) in &o.fields {
                    match r.fields.get(f) {
                        None => out.push(format!("input field `{name}.{f}` does not exist")),
                        Some(rd) => {
                            if rd.ty != def.ty {
                                out.push(format!("input field `{name}.{f}` is `{}`, not `{}`", rd.ty, def.ty));
                            }
                            if rd.default_value.as_ref().map(|v| v.to_string())
                                != def.default_value.as_ref().map(|v| v.to_string())
                            {
                                out.push(format!("input field `{name}.{f}` has another default"));
                            }
                        }
                    }
                }
            }
            (ExtendedType::Enum(o), ExtendedType::Enum(r)) => {
                for v in o.values.keys() {
                    if !r.values.contains_key(v) {
                        out.push(format!("enum value `{name}.{v}` does not exist"));
                    }
                }
            }
            (ExtendedType::Union(o), ExtendedType::Union(r)) => {
                for m in &o.members {
                    if !r.members.contains(m) {
                        out.push(format!("`{}` is not a member of `{name}`", m.name));
                    }
                }
            }
            (ExtendedType::Scalar(_), ExtendedType::Scalar(_)) => {}
            _ => out.push(format!("`{name}` is a different kind of type")),
        }
    }
    out
}

fn fields<'a>(
    ty: &str,
    ours: impl Iterator<
        Item = (&'a apollo_compiler::Name, &'a apollo_compiler::Node<apollo_compiler::schema::FieldDefinition>),
    >,
    real: impl Fn(&str) -> Option<&'a apollo_compiler::Node<apollo_compiler::schema::FieldDefinition>>,
    out: &mut Vec<String>,
) {
    for (name, def) in ours {
        if name.starts_with("__") {
            continue;
        }
        let Some(r) = real(name) else {
            out.push(format!("field `{ty}.{name}` does not exist"));
            continue;
        };
        if r.ty != def.ty {
            out.push(format!("field `{ty}.{name}` is `{}`, not `{}`", r.ty, def.ty));
        }
        for arg in &def.arguments {
            match r.arguments.iter().find(|a| a.name == arg.name) {
                None => out.push(format!("argument `{ty}.{name}({})` does not exist", arg.name)),
                Some(ra) => {
                    if ra.ty != arg.ty {
                        out.push(format!("argument `{ty}.{name}({})` is `{}`, not `{}`", arg.name, ra.ty, arg.ty));
                    }
                    if ra.default_value.as_ref().map(|v| v.to_string())
                        != arg.default_value.as_ref().map(|v| v.to_string())
                    {
                        out.push(format!("argument `{ty}.{name}({})` has another default", arg.name));
                    }
                }
            }
        }
        for ra in &r.arguments {
            if ra.ty.is_non_null() && ra.default_value.is_none() && !def.arguments.iter().any(|a| a.name == ra.name) {
                out.push(format!("required argument `{ty}.{name}({})` is missing", ra.name));
            }
        }
    }
}

#[test]
fn every_type_and_field_of_the_subset_exists_in_the_real_schema() {
    let sdl = std::fs::read_to_string(REAL).unwrap_or_else(|e| panic!("cannot read the real schema `{REAL}`: {e}"));
    let real = parse(&sdl, "admin-2026-07.graphql");
    let subset = catsync::sandbox::schema::schema();
    let problems = disagreements(subset, &real);
    assert!(problems.is_empty(), "the sandbox schema disagrees with Shopify's:\n{}", problems.join("\n"));
    // The subset is not trivially small: it covers what catsync uses.
    let query = subset.types.get("QueryRoot").expect("QueryRoot");
    assert!(matches!(query, ExtendedType::Object(o) if o.fields.len() >= 15));

    // The check can fail: a wrong type, an invented field and a missing enum value are caught.
    let wrong = parse(
        "type Query { a: Int } type Product { title: Int handle: String! invented: String } enum ProductStatus { ACTIVE GONE }",
        "wrong.graphql",
    );
    let found = disagreements(&wrong, &real);
    assert!(found.iter().any(|p| p.contains("`Product.title` is `String!`, not `Int`")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("`Product.invented` does not exist")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("`ProductStatus.GONE` does not exist")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("type `Query` does not exist")), "{found:?}");
}
