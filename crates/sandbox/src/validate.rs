//! Static validation of request documents against the schema, reporting what Shopify's
//! GraphQL server (graphql-ruby) reports: the same messages, `extensions.code`s, locations and
//! paths (`["query Name", "field", …]`). Rules the sandbox does not phrase itself (field merging
//! conflicts, fragment cycles) fall back to apollo-compiler's validation, so nothing the real API
//! rejects gets through.

use std::collections::{BTreeMap, BTreeSet};

use apollo_compiler::ast::{self, DirectiveLocation, OperationType, Type};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{ExecutableDocument, Node, Schema};

use super::document::Document;
use super::response::{GqlError, Out, Pos};
use super::schema::{self as sch, MUTATION_ROOT, QUERY_ROOT};

/// Validates `doc`; an empty list means it may be executed.
pub fn validate(schema: &apollo_compiler::validation::Valid<Schema>, doc: &Document, source: &str) -> Vec<GqlError> {
    let mut v =
        Validator { schema, doc, errors: Vec::new(), path: Vec::new(), usages: Vec::new(), spreads: Vec::new() };
    v.run();
    if v.errors.is_empty() {
        // Safety net for the rules phrased by apollo-compiler only.
        if let Err(with_errors) = ExecutableDocument::parse_and_validate(schema, source, "request.graphql") {
            for diag in with_errors.errors.iter() {
                let pos = diag.line_column_range().map(|r| Pos { line: r.start.line, column: r.start.column });
                let code = match diag.error.unstable_error_name() {
                    Some("ConflictingFieldType" | "ConflictingFieldName" | "ConflictingFieldArgument") => {
                        "fieldConflict"
                    }
                    Some("RecursiveFragmentDefinition") => "infiniteLoop",
                    _ => "validationError",
                };
                v.errors.push(GqlError::new(diag.error.to_string()).at(pos).code(code));
            }
        }
    }
    v.errors
}

/// A use of a variable where a value of `expected` type goes.
#[derive(Clone)]
struct Usage {
    name: String,
    expected: Type,
    /// Whether the location has a default value (then a nullable variable may flow in).
    location_default: bool,
    argument: String,
    pos: Option<Pos>,
    path: Vec<Out>,
}

/// What an argument belongs to, for messages (`Argument 'id' on Field 'product'`).
#[derive(Clone)]
enum Owner {
    Field(String),
    Directive(String),
    InputObject(String),
}

impl Owner {
    fn kind(&self) -> &'static str {
        match self {
            Owner::Field(_) => "Field",
            Owner::Directive(_) => "Directive",
            Owner::InputObject(_) => "InputObject",
        }
    }

    fn name(&self) -> &str {
        match self {
            Owner::Field(n) | Owner::Directive(n) | Owner::InputObject(n) => n,
        }
    }
}

enum Check {
    Valid,
    Invalid,
    Reported,
}

struct Validator<'a> {
    schema: &'a Schema,
    doc: &'a Document,
    errors: Vec<GqlError>,
    path: Vec<Out>,
    usages: Vec<Usage>,
    spreads: Vec<String>,
}

impl Validator<'_> {
    fn run(&mut self) {
        self.check_definitions();
        let mut fragment_usages: BTreeMap<String, (Vec<Usage>, Vec<String>)> = BTreeMap::new();
        for frag in self.doc.fragments() {
            self.path = vec![Out::str(format!("fragment {}", frag.name))];
            self.usages.clear();
            self.spreads.clear();
            let cond = frag.type_condition.as_str();
            let pos = self.doc.pos(frag);
            if self.check_condition(cond, pos) {
                self.directives(&frag.directives, DirectiveLocation::FragmentDefinition);
                self.selection_set(&frag.selection_set, cond);
            }
            fragment_usages.insert(frag.name.to_string(), (self.usages.clone(), self.spreads.clone()));
        }
        let mut used_fragments = BTreeSet::new();
        for op in self.doc.operations() {
            let label = op_label(op);
            self.path = vec![Out::str(label.clone())];
            self.usages.clear();
            self.spreads.clear();
            let root = match op.operation_type {
                OperationType::Query => QUERY_ROOT,
                OperationType::Mutation => MUTATION_ROOT,
                OperationType::Subscription => {
                    self.errors.push(
                        GqlError::new("Schema is not configured for subscriptions")
                            .at(self.doc.pos(op))
                            .path(self.path.clone())
                            .code("missingSubscriptionConfiguration"),
                    );
                    continue;
                }
            };
            let location = match op.operation_type {
                OperationType::Mutation => DirectiveLocation::Mutation,
                _ => DirectiveLocation::Query,
            };
            self.variable_definitions(op);
            self.directives(&op.directives, location);
            self.selection_set(&op.selection_set, root);
            // Usages through fragments, transitively.
            let mut usages = self.usages.clone();
            let mut queue: Vec<String> = self.spreads.clone();
            let mut seen = BTreeSet::new();
            while let Some(name) = queue.pop() {
                if !seen.insert(name.clone()) {
                    continue;
                }
                if let Some((u, s)) = fragment_usages.get(&name) {
                    usages.extend(u.iter().cloned());
                    queue.extend(s.iter().cloned());
                }
            }
            used_fragments.extend(seen);
            self.variable_usages(op, &usages, &op_name_for_messages(op));
        }
        for frag in self.doc.fragments() {
            if !used_fragments.contains(frag.name.as_str()) {
                self.errors.push(
                    GqlError::new(format!("Fragment {} was defined, but not used", frag.name))
                        .at(self.doc.pos(frag))
                        .path(vec![Out::str(format!("fragment {}", frag.name))])
                        .code("useAndDefineFragment")
                        .ext("fragmentName", Out::str(frag.name.as_str())),
                );
            }
        }
    }

    /// Unique operation and fragment names.
    fn check_definitions(&mut self) {
        let mut names = BTreeMap::new();
        for op in self.doc.operations() {
            if let Some(name) = &op.name {
                *names.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        for (name, count) in names {
            if count > 1 {
                self.errors.push(
                    GqlError::new(format!("Operation name \"{name}\" must be unique"))
                        .code("operationNotUnique")
                        .ext("operationName", Out::str(name)),
                );
            }
        }
        let mut frags = BTreeMap::new();
        for f in self.doc.fragments() {
            *frags.entry(f.name.to_string()).or_insert(0) += 1;
        }
        for (name, count) in frags {
            if count > 1 {
                self.errors.push(
                    GqlError::new(format!("Fragment name \"{name}\" must be unique"))
                        .code("fragmentNotUnique")
                        .ext("fragmentName", Out::str(name)),
                );
            }
        }
    }

    fn variable_definitions(&mut self, op: &Node<ast::OperationDefinition>) {
        let mut seen = BTreeSet::new();
        for var in &op.variables {
            let pos = self.doc.pos(var);
            if !seen.insert(var.name.to_string()) {
                self.errors.push(
                    GqlError::new(format!("There can only be one variable named \"{}\"", var.name))
                        .at(pos)
                        .path(self.path.clone())
                        .code("variableNotUnique")
                        .ext("variableName", Out::str(var.name.as_str())),
                );
            }
            let named = var.ty.inner_named_type();
            match self.schema.types.get(named) {
                None => self.errors.push(
                    GqlError::new(format!("{} isn't a defined input type (on ${})", named, var.name))
                        .at(pos)
                        .path(self.path.clone())
                        .code("variableRequiresValidType")
                        .ext("typeName", Out::str(named.as_str()))
                        .ext("variableName", Out::str(var.name.as_str())),
                ),
                Some(_) if !sch::is_input(self.schema, named) => self.errors.push(
                    GqlError::new(format!("{} isn't a valid input type (on ${})", named, var.name))
                        .at(pos)
                        .path(self.path.clone())
                        .code("variableRequiresValidType")
                        .ext("typeName", Out::str(named.as_str()))
                        .ext("variableName", Out::str(var.name.as_str())),
                ),
                Some(_) => {
                    if let Some(default) = &var.default_value {
                        let saved = std::mem::take(&mut self.usages);
                        let bad = !matches!(self.literal(default, &var.ty, ""), Check::Valid);
                        self.usages = saved;
                        if bad {
                            self.errors.push(
                                GqlError::new(format!(
                                    "Default value for ${} doesn't match type {}",
                                    var.name,
                                    sch::signature(&var.ty)
                                ))
                                .at(pos)
                                .path(self.path.clone())
                                .code("defaultValueInvalidType")
                                .ext("variableName", Out::str(var.name.as_str()))
                                .ext("typeName", Out::str(sch::signature(&var.ty))),
                            );
                        }
                    }
                }
            }
            self.directives(&var.directives, DirectiveLocation::VariableDefinition);
        }
    }

    fn variable_usages(&mut self, op: &Node<ast::OperationDefinition>, usages: &[Usage], label: &str) {
        let defs: BTreeMap<&str, &Node<ast::VariableDefinition>> =
            op.variables.iter().map(|v| (v.name.as_str(), v)).collect();
        let mut used = BTreeSet::new();
        let mut reported_undefined = BTreeSet::new();
        for u in usages {
            used.insert(u.name.clone());
            let Some(def) = defs.get(u.name.as_str()) else {
                if reported_undefined.insert(u.name.clone()) {
                    self.errors.push(
                        GqlError::new(format!("Variable ${} is used by {label} but not declared", u.name))
                            .at(u.pos)
                            .path(u.path.clone())
                            .code("variableNotDefined")
                            .ext("variableName", Out::str(&u.name)),
                    );
                }
                continue;
            };
            if !sch::is_input(self.schema, def.ty.inner_named_type()) {
                continue; // reported with the definition
            }
            let has_default = def.default_value.as_ref().is_some_and(|d| !matches!(**d, ast::Value::Null));
            if !sch::compatible(&def.ty, &u.expected, has_default || u.location_default) {
                let kind = if def.ty.inner_named_type() != u.expected.inner_named_type() {
                    "Type mismatch"
                } else if list_depth(&def.ty) != list_depth(&u.expected) {
                    "List dimension mismatch"
                } else {
                    "Nullability mismatch"
                };
                self.errors.push(
                    GqlError::new(format!(
                        "{kind} on variable ${} and argument {} ({} / {})",
                        u.name,
                        u.argument,
                        sch::signature(&def.ty),
                        sch::signature(&u.expected)
                    ))
                    .at(u.pos)
                    .path(u.path.clone())
                    .code("variableMismatch")
                    .ext("variableName", Out::str(&u.name))
                    .ext("typeName", Out::str(sch::signature(&def.ty)))
                    .ext("argumentName", Out::str(&u.argument))
                    .ext("errorMessage", Out::str(kind)),
                );
            }
        }
        for var in &op.variables {
            if !used.contains(var.name.as_str()) {
                self.errors.push(
                    GqlError::new(format!("Variable ${} is declared by {label} but not used", var.name))
                        .at(self.doc.pos(var))
                        .path(vec![Out::str(op_label(op))])
                        .code("variableNotUsed")
                        .ext("variableName", Out::str(var.name.as_str())),
                );
            }
        }
    }

    /// Checks a fragment type condition; returns whether the fragment body can be checked.
    fn check_condition(&mut self, cond: &str, pos: Option<Pos>) -> bool {
        if !self.schema.types.contains_key(cond) {
            self.errors.push(
                GqlError::new(format!("No such type {cond}, so it can't be a fragment condition"))
                    .at(pos)
                    .path(self.path.clone())
                    .code("undefinedType")
                    .ext("typeName", Out::str(cond)),
            );
            return false;
        }
        if !sch::is_composite(self.schema, cond) {
            self.errors.push(
                GqlError::new(format!("Invalid fragment on type {cond} (must be Union, Interface or Object)"))
                    .at(pos)
                    .path(self.path.clone())
                    .code("fragmentOnNonCompositeType")
                    .ext("typeName", Out::str(cond)),
            );
            return false;
        }
        true
    }

    fn selection_set(&mut self, set: &[ast::Selection], parent: &str) {
        for sel in set {
            match sel {
                ast::Selection::Field(f) => self.field(f, parent),
                ast::Selection::FragmentSpread(s) => {
                    let pos = self.doc.pos(s);
                    self.directives(&s.directives, DirectiveLocation::FragmentSpread);
                    match self.doc.fragment(&s.fragment_name) {
                        None => self.errors.push(
                            GqlError::new(format!("Fragment {} was used, but not defined", s.fragment_name))
                                .at(pos)
                                .path(self.path.clone())
                                .code("useAndDefineFragment")
                                .ext("fragmentName", Out::str(s.fragment_name.as_str())),
                        ),
                        Some(frag) => {
                            self.spreads.push(frag.name.to_string());
                            let cond = frag.type_condition.as_str();
                            if sch::is_composite(self.schema, cond) && !sch::can_spread(self.schema, cond, parent) {
                                self.errors.push(
                                    GqlError::new(format!(
                                        "Fragment {} on {cond} can't be spread inside {parent}",
                                        s.fragment_name
                                    ))
                                    .at(pos)
                                    .path(self.path.clone())
                                    .code("cannotSpreadFragment")
                                    .ext("typeName", Out::str(parent))
                                    .ext("fragmentName", Out::str(s.fragment_name.as_str())),
                                );
                            }
                        }
                    }
                }
                ast::Selection::InlineFragment(inline) => {
                    let pos = self.doc.pos(inline);
                    self.directives(&inline.directives, DirectiveLocation::InlineFragment);
                    let cond = inline.type_condition.as_ref().map_or(parent, |c| c.as_str());
                    self.path.push(Out::str(match &inline.type_condition {
                        Some(c) => format!("... on {c}"),
                        None => "...".to_string(),
                    }));
                    if self.check_condition(cond, pos) {
                        if sch::can_spread(self.schema, cond, parent) {
                            self.selection_set(&inline.selection_set, cond);
                        } else {
                            self.errors.push(
                                GqlError::new(format!("Fragment on {cond} can't be spread inside {parent}"))
                                    .at(pos)
                                    .path(self.path.clone())
                                    .code("cannotSpreadFragment")
                                    .ext("typeName", Out::str(parent))
                                    .ext("fragmentName", Out::str("unknown")),
                            );
                        }
                    }
                    self.path.pop();
                }
            }
        }
    }

    fn field(&mut self, f: &Node<ast::Field>, parent: &str) {
        let pos = self.doc.pos(f);
        let key = f.alias.as_ref().unwrap_or(&f.name).to_string();
        self.path.push(Out::str(&key));
        self.directives(&f.directives, DirectiveLocation::Field);
        if f.name == "__typename" {
            if !f.selection_set.is_empty() {
                self.leaf_with_selections(f, "String", "scalars", pos);
            }
            self.path.pop();
            return;
        }
        if parent == QUERY_ROOT && matches!(f.name.as_str(), "__schema" | "__type") {
            // Introspection is checked by apollo-compiler, which knows the meta-schema.
            self.path.pop();
            return;
        }
        let Some(def) = sch::field(self.schema, parent, &f.name) else {
            self.errors.push(
                GqlError::new(format!("Field '{}' doesn't exist on type '{parent}'", f.name))
                    .at(pos)
                    .path(self.path.clone())
                    .code("undefinedField")
                    .ext("typeName", Out::str(parent))
                    .ext("fieldName", Out::str(f.name.as_str())),
            );
            self.path.pop();
            return;
        };
        let owner = Owner::Field(f.name.to_string());
        self.arguments(&f.arguments, &def.arguments, &owner, pos);
        let named = def.ty.inner_named_type().as_str();
        if sch::is_leaf(self.schema, named) {
            if !f.selection_set.is_empty() {
                let kind = if matches!(self.schema.types.get(named), Some(ExtendedType::Enum(_))) {
                    "enums"
                } else {
                    "scalars"
                };
                self.leaf_with_selections(f, named, kind, pos);
            }
        } else if f.selection_set.is_empty() {
            self.errors.push(
                GqlError::new(format!(
                    "Field must have selections (field '{}' returns {named} but has no selections. Did you mean '{} {{ ... }}'?)",
                    f.name, f.name
                ))
                .at(pos)
                .path(self.path.clone())
                .code("selectionMismatch")
                .ext("nodeName", Out::str(format!("field '{}'", f.name)))
                .ext("typeName", Out::str(named)),
            );
        } else {
            self.selection_set(&f.selection_set, named);
        }
        self.path.pop();
    }

    fn leaf_with_selections(&mut self, f: &Node<ast::Field>, type_name: &str, kind: &str, pos: Option<Pos>) {
        let names: Vec<String> = f
            .selection_set
            .iter()
            .map(|s| match s {
                ast::Selection::Field(x) => x.name.to_string(),
                ast::Selection::FragmentSpread(x) => format!("...{}", x.fragment_name),
                ast::Selection::InlineFragment(_) => "...".to_string(),
            })
            .collect();
        self.errors.push(
            GqlError::new(format!(
                "Selections can't be made on {kind} (field '{}' returns {type_name} but has selections [{}])",
                f.name,
                names.join(", ")
            ))
            .at(pos)
            .path(self.path.clone())
            .code("selectionMismatch")
            .ext("nodeName", Out::str(format!("field '{}'", f.name)))
            .ext("typeName", Out::str(type_name)),
        );
    }

    fn arguments(
        &mut self,
        given: &[Node<ast::Argument>],
        defs: &[Node<ast::InputValueDefinition>],
        owner: &Owner,
        owner_pos: Option<Pos>,
    ) {
        let mut seen = BTreeSet::new();
        for arg in given {
            let pos = self.doc.pos(arg);
            if !seen.insert(arg.name.to_string()) {
                self.errors.push(
                    GqlError::new(format!("There can be only one argument named \"{}\"", arg.name))
                        .at(pos)
                        .path(self.path.clone())
                        .code("argumentNotUnique")
                        .ext("name", Out::str(arg.name.as_str())),
                );
                continue;
            }
            let Some(def) = defs.iter().find(|d| d.name == arg.name) else {
                let label = match owner {
                    Owner::Directive(n) => format!("Directive '{n}'"),
                    _ => format!("Field '{}'", owner.name()),
                };
                self.errors.push(
                    GqlError::new(format!("{label} doesn't accept argument '{}'", arg.name))
                        .at(pos)
                        .path(self.path.clone())
                        .code("argumentNotAccepted")
                        .ext("name", Out::str(owner.name()))
                        .ext("typeName", Out::str(owner.kind()))
                        .ext("argumentName", Out::str(arg.name.as_str())),
                );
                continue;
            };
            self.path.push(Out::str(arg.name.as_str()));
            let check = self.argument_value(&arg.value, &def.ty, def.default_value.is_some(), &arg.name, pos);
            if let Check::Invalid = check {
                self.invalid_argument(owner, &arg.name, &arg.value, &def.ty, pos);
            }
            self.path.pop();
        }
        let missing: Vec<&str> = defs
            .iter()
            .filter(|d| d.ty.is_non_null() && d.default_value.is_none() && !given.iter().any(|a| a.name == d.name))
            .map(|d| d.name.as_str())
            .collect();
        if !missing.is_empty() {
            let (label, class) = match owner {
                Owner::Directive(n) => (format!("Directive '{n}'"), "Directive"),
                _ => (format!("Field '{}'", owner.name()), "Field"),
            };
            self.errors.push(
                GqlError::new(format!("{label} is missing required arguments: {}", missing.join(", ")))
                    .at(owner_pos)
                    .path(self.path.clone())
                    .code("missingRequiredArguments")
                    .ext("className", Out::str(class))
                    .ext("name", Out::str(owner.name()))
                    .ext("arguments", Out::str(missing.join(", "))),
            );
        }
    }

    fn argument_value(
        &mut self,
        value: &Node<ast::Value>,
        ty: &Type,
        has_default: bool,
        arg: &str,
        pos: Option<Pos>,
    ) -> Check {
        if let ast::Value::Variable(name) = &**value {
            self.usages.push(Usage {
                name: name.to_string(),
                expected: ty.clone(),
                location_default: has_default,
                argument: arg.to_string(),
                pos,
                path: self.path.clone(),
            });
            return Check::Valid;
        }
        self.literal(value, ty, arg)
    }

    fn invalid_argument(&mut self, owner: &Owner, arg: &str, value: &ast::Value, ty: &Type, pos: Option<Pos>) {
        self.errors.push(
            GqlError::new(format!(
                "Argument '{arg}' on {} '{}' has an invalid value ({}). Expected type '{}'.",
                owner.kind(),
                owner.name(),
                print_value(value),
                sch::signature(ty)
            ))
            .at(pos)
            .path(self.path.clone())
            .code("argumentLiteralsIncompatible")
            .ext("typeName", Out::str(owner.kind()))
            .ext("argumentName", Out::str(arg)),
        );
    }

    /// Checks a literal against `ty`; problems inside input objects are reported here, an
    /// `Invalid` result is reported by the caller (which knows the argument).
    fn literal(&mut self, value: &Node<ast::Value>, ty: &Type, arg: &str) -> Check {
        use ast::Value as V;
        match &**value {
            V::Variable(name) => {
                let pos = self.doc.pos(value);
                self.usages.push(Usage {
                    name: name.to_string(),
                    expected: ty.clone(),
                    location_default: false,
                    argument: arg.to_string(),
                    pos,
                    path: self.path.clone(),
                });
                Check::Valid
            }
            V::Null => {
                if ty.is_non_null() {
                    Check::Invalid
                } else {
                    Check::Valid
                }
            }
            _ if ty.is_list() => {
                let item = ty.item_type();
                let items: Vec<&Node<ast::Value>> = match &**value {
                    V::List(items) => items.iter().collect(),
                    _ => vec![value],
                };
                let mut result = Check::Valid;
                for it in items {
                    match self.literal(it, item, arg) {
                        Check::Invalid => return Check::Invalid,
                        Check::Reported => result = Check::Reported,
                        Check::Valid => {}
                    }
                }
                result
            }
            _ => {
                let named = ty.inner_named_type().as_str();
                match self.schema.types.get(named) {
                    Some(ExtendedType::InputObject(io)) => {
                        let V::Object(fields) = &**value else { return Check::Invalid };
                        let pos = self.doc.pos(value);
                        let owner = Owner::InputObject(named.to_string());
                        let mut result = Check::Valid;
                        let mut seen = BTreeSet::new();
                        for (name, v) in fields {
                            self.path.push(Out::str(name.as_str()));
                            if !seen.insert(name.to_string()) {
                                self.errors.push(
                                    GqlError::new(format!("There can be only one input field named \"{name}\""))
                                        .at(pos)
                                        .path(self.path.clone())
                                        .code("inputFieldNotUnique")
                                        .ext("name", Out::str(name.as_str())),
                                );
                                result = Check::Reported;
                            } else if let Some(def) = io.fields.get(name.as_str()) {
                                match self.argument_value(v, &def.ty, def.default_value.is_some(), name, pos) {
                                    Check::Invalid => {
                                        self.invalid_argument(&owner, name, v, &def.ty, pos);
                                        result = Check::Reported;
                                    }
                                    Check::Reported => result = Check::Reported,
                                    Check::Valid => {}
                                }
                            } else {
                                self.errors.push(
                                    GqlError::new(format!("InputObject '{named}' doesn't accept argument '{name}'"))
                                        .at(pos)
                                        .path(self.path.clone())
                                        .code("argumentNotAccepted")
                                        .ext("name", Out::str(named))
                                        .ext("typeName", Out::str("InputObject"))
                                        .ext("argumentName", Out::str(name.as_str())),
                                );
                                result = Check::Reported;
                            }
                            self.path.pop();
                        }
                        for (fname, def) in &io.fields {
                            if def.ty.is_non_null()
                                && def.default_value.is_none()
                                && !fields.iter().any(|(n, _)| n == fname)
                            {
                                self.path.push(Out::str(fname.as_str()));
                                self.errors.push(
                                    GqlError::new(format!(
                                        "Argument '{fname}' on InputObject '{named}' is required. Expected type {}",
                                        sch::signature(&def.ty)
                                    ))
                                    .at(pos)
                                    .path(self.path.clone())
                                    .code("missingRequiredInputObjectAttribute")
                                    .ext("argumentName", Out::str(fname.as_str()))
                                    .ext("argumentType", Out::str(sch::signature(&def.ty)))
                                    .ext("inputObjectType", Out::str(named)),
                                );
                                self.path.pop();
                                result = Check::Reported;
                            }
                        }
                        result
                    }
                    Some(ExtendedType::Enum(e)) => match &**value {
                        V::Enum(name) if e.values.contains_key(name.as_str()) => Check::Valid,
                        _ => Check::Invalid,
                    },
                    Some(ExtendedType::Scalar(_)) => {
                        if scalar_literal_ok(named, value) {
                            Check::Valid
                        } else {
                            Check::Invalid
                        }
                    }
                    _ => Check::Invalid,
                }
            }
        }
    }

    fn directives(&mut self, list: &ast::DirectiveList, location: DirectiveLocation) {
        for d in list.iter() {
            let pos = self.doc.pos(d);
            let Some(def) = self.schema.directive_definitions.get(d.name.as_str()) else {
                self.errors.push(
                    GqlError::new(format!("Directive @{} is not defined", d.name))
                        .at(pos)
                        .path(self.path.clone())
                        .code("undefinedDirective")
                        .ext("directiveName", Out::str(d.name.as_str())),
                );
                continue;
            };
            if !def.locations.contains(&location) {
                let allowed: Vec<String> = def.locations.iter().map(location_name).collect();
                self.errors.push(
                    GqlError::new(format!(
                        "'@{}' can't be applied to {} (allowed: {})",
                        d.name,
                        location_name(&location),
                        allowed.join(", ")
                    ))
                    .at(pos)
                    .path(self.path.clone())
                    .code("directiveCannotBeApplied")
                    .ext("targetName", Out::str(location_name(&location)))
                    .ext("name", Out::str(d.name.as_str())),
                );
                continue;
            }
            self.arguments(&d.arguments, &def.arguments, &Owner::Directive(d.name.to_string()), pos);
        }
    }
}

fn scalar_literal_ok(scalar: &str, value: &ast::Value) -> bool {
    use ast::Value as V;
    match scalar {
        "Int" => matches!(value, V::Int(i) if i.try_to_i32().is_ok()),
        "Float" => matches!(value, V::Int(_) | V::Float(_)),
        "String" | "HTML" | "URL" | "DateTime" => matches!(value, V::String(_)),
        "Boolean" => matches!(value, V::Boolean(_)),
        "ID" => matches!(value, V::String(_) | V::Int(_)),
        "Money" | "Decimal" => matches!(value, V::String(_) | V::Int(_) | V::Float(_)),
        "UnsignedInt64" => match value {
            V::String(s) => s.parse::<u64>().is_ok(),
            V::Int(i) => i.as_str().parse::<u64>().is_ok(),
            _ => false,
        },
        _ => !matches!(value, V::Null),
    }
}

/// The label graphql-ruby uses at the start of error paths (`query Name`, `mutation`).
pub fn op_label(op: &ast::OperationDefinition) -> String {
    let kind = match op.operation_type {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    match &op.name {
        Some(n) => format!("{kind} {n}"),
        None => kind.to_string(),
    }
}

/// How variable messages name an operation (`Name`, or `anonymous query`).
fn op_name_for_messages(op: &ast::OperationDefinition) -> String {
    match &op.name {
        Some(n) => n.to_string(),
        None => {
            format!("anonymous {}", if op.operation_type == OperationType::Mutation { "mutation" } else { "query" })
        }
    }
}

fn list_depth(ty: &Type) -> usize {
    match ty {
        Type::List(inner) | Type::NonNullList(inner) => 1 + list_depth(inner),
        _ => 0,
    }
}

fn location_name(loc: &DirectiveLocation) -> String {
    match loc {
        DirectiveLocation::Query => "queries",
        DirectiveLocation::Mutation => "mutations",
        DirectiveLocation::Subscription => "subscriptions",
        DirectiveLocation::Field => "fields",
        DirectiveLocation::FragmentDefinition => "fragment definitions",
        DirectiveLocation::FragmentSpread => "fragment spreads",
        DirectiveLocation::InlineFragment => "inline fragments",
        DirectiveLocation::VariableDefinition => "variable definitions",
        _ => "schema definitions",
    }
    .to_string()
}

/// Prints a literal as graphql-ruby does in messages (`"ten"`, `{id: null}`, `[1, 2]`).
pub fn print_value(value: &ast::Value) -> String {
    use ast::Value as V;
    match value {
        V::Null => "null".to_string(),
        V::Enum(n) => n.to_string(),
        V::Variable(n) => format!("${n}"),
        V::String(s) => serde_json::to_string(s).unwrap_or_default(),
        V::Float(f) => f.as_str().to_string(),
        V::Int(i) => i.as_str().to_string(),
        V::Boolean(b) => b.to_string(),
        V::List(items) => format!("[{}]", items.iter().map(|i| print_value(i)).collect::<Vec<_>>().join(", ")),
        V::Object(fields) => format!(
            "{{{}}}",
            fields.iter().map(|(k, v)| format!("{k}: {}", print_value(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;
    use crate::schema::schema;

    fn errors(src: &str) -> Vec<String> {
        let doc = parse(src).unwrap();
        validate(schema(), &doc, src).into_iter().map(|e| e.to_out().to_json_string()).collect()
    }

    #[test]
    fn unknown_fields_are_reported_like_shopify() {
        let e = errors("query GraphqlBaseValidationUnknownProductField {\n  products(first: 1) {\n    nodes {\n      id\n      definitelyNotAProductField\n    }\n  }\n}\n");
        assert_eq!(
            e,
            vec![
                r#"{"message":"Field 'definitelyNotAProductField' doesn't exist on type 'Product'","locations":[{"line":5,"column":7}],"path":["query GraphqlBaseValidationUnknownProductField","products","nodes","definitelyNotAProductField"],"extensions":{"code":"undefinedField","typeName":"Product","fieldName":"definitelyNotAProductField"}}"#
            ]
        );
    }

    #[test]
    fn missing_selections_are_reported_like_shopify() {
        let e = errors("query GraphqlBaseValidationMissingSubselection {\n  shop\n}\n");
        assert_eq!(
            e,
            vec![
                r#"{"message":"Field must have selections (field 'shop' returns Shop but has no selections. Did you mean 'shop { ... }'?)","locations":[{"line":2,"column":3}],"path":["query GraphqlBaseValidationMissingSubselection","shop"],"extensions":{"code":"selectionMismatch","nodeName":"field 'shop'","typeName":"Shop"}}"#
            ]
        );
    }

    #[test]
    fn inline_input_objects_are_checked_like_shopify() {
        let e = errors("mutation {\n  productDelete(input: {}) {\n    deletedProductId\n  }\n}\n");
        assert_eq!(
            e,
            vec![
                r#"{"message":"Argument 'id' on InputObject 'ProductDeleteInput' is required. Expected type ID!","locations":[{"line":2,"column":24}],"path":["mutation","productDelete","input","id"],"extensions":{"code":"missingRequiredInputObjectAttribute","argumentName":"id","argumentType":"ID!","inputObjectType":"ProductDeleteInput"}}"#
            ]
        );
        let e = errors("mutation {\n  productDelete(input: { id: null }) {\n    deletedProductId\n  }\n}\n");
        assert_eq!(
            e,
            vec![
                r#"{"message":"Argument 'id' on InputObject 'ProductDeleteInput' has an invalid value (null). Expected type 'ID!'.","locations":[{"line":2,"column":24}],"path":["mutation","productDelete","input","id"],"extensions":{"code":"argumentLiteralsIncompatible","typeName":"InputObject","argumentName":"id"}}"#
            ]
        );
    }

    #[test]
    fn variables_are_checked() {
        let e = errors("query Q($id: ID, $x: Int) { product(id: $id) { id } }");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("Nullability mismatch on variable $id and argument id (ID / ID!)"), "{e:?}");
        assert!(e[1].contains("Variable $x is declared by Q but not used"), "{e:?}");
        let e = errors("{ product(id: $id) { id } }");
        assert!(e[0].contains("Variable $id is used by anonymous query but not declared"), "{e:?}");
    }

    #[test]
    fn arguments_are_checked() {
        let e = errors("{ products(first: \"ten\", foo: 1) { nodes { id } } product { id } }");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0]
            .contains("Argument 'first' on Field 'products' has an invalid value (\\\"ten\\\"). Expected type 'Int'."));
        assert!(e[1].contains("Field 'products' doesn't accept argument 'foo'"));
        assert!(e[2].contains("Field 'product' is missing required arguments: id"));
    }

    #[test]
    fn user_error_has_no_code() {
        let e = errors("mutation { productDelete(input: {id: \"x\"}) { userErrors { code } } }");
        assert!(e[0].contains("Field 'code' doesn't exist on type 'UserError'"), "{e:?}");
    }

    #[test]
    fn valid_documents_pass() {
        assert!(errors("query($h: String!) { productByIdentifier(identifier: {handle: $h}) { id ...F } } fragment F on Product { title }").is_empty());
        assert!(errors("{ productOperation(id: \"x\") { __typename status ... on ProductSetOperation { id } } }")
            .is_empty());
    }

    #[test]
    fn conflicts_fall_back_to_apollo() {
        let e = errors("{ shop { id: name id } }");
        assert!(!e.is_empty() && e.iter().all(|e| e.contains("fieldConflict")), "{e:?}");
    }
}
