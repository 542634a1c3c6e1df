//! The filters, tests and functions a template names, read from its source: minijinja compiles
//! `{{ x | sluggify }}` without complaint and fails only when it renders, so `validate` scans the
//! template's tags for the names they call and checks them against the environment.

/// What a name is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Use {
    Filter,
    Test,
    Function,
}

impl Use {
    pub fn word(self) -> &'static str {
        match self {
            Use::Filter => "filter",
            Use::Test => "test",
            Use::Function => "function",
        }
    }
}

/// One name a template calls, and the line of the template it is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Called {
    pub what: Use,
    pub name: String,
    pub line: usize,
}

/// The names `source` calls, in order, and the macros it defines (which it may call).
/// `expression`: the source is one expression (a `filter` stage's `where`), not a template.
pub fn called(source: &str, expression: bool) -> (Vec<Called>, Vec<String>) {
    let mut calls = Vec::new();
    let mut defined = Vec::new();
    for block in blocks(source, expression) {
        scan_block(&block, &mut calls, &mut defined);
    }
    (calls, defined)
}

/// The keywords of the template language: never a function name before `(`.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "elif",
    "else",
    "for",
    "recursive",
    "macro",
    "call",
    "set",
    "with",
    "filter",
    "block",
    "import",
    "from",
    "include",
    "extends",
    "as",
    "autoescape",
    "do",
    "continue",
    "break",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Punct(char),
    Literal,
}

/// The tokens of one `{{ … }}` or `{% … %}` tag with their lines; `statement` for `{% … %}`.
struct Block<'a> {
    statement: bool,
    tokens: Vec<(Tok<'a>, usize)>,
}

fn blocks(source: &str, expression: bool) -> Vec<Block<'_>> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    if expression {
        out.push(tokens(source, 0, &mut line, None).0);
        return out;
    }
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'{', b'#') => {
                let end = source[i + 2..].find("#}").map_or(bytes.len(), |e| i + 2 + e + 2);
                line += source[i..end].matches('\n').count();
                i = end;
            }
            (b'{', open @ (b'{' | b'%')) => {
                let closer = if open == b'{' { '}' } else { '%' };
                let (mut block, end) = tokens(source, i + 2, &mut line, Some(closer));
                block.statement = open == b'%';
                i = end;
                // `{% raw %}…{% endraw %}` is text.
                if block.statement
                    && matches!(
                        block.tokens.iter().find(|(t, _)| matches!(t, Tok::Ident(_))),
                        Some((Tok::Ident("raw"), _))
                    )
                {
                    let end = source[i..].find("endraw").map_or(bytes.len(), |e| i + e);
                    line += source[i..end].matches('\n').count();
                    i = end;
                }
                out.push(block);
            }
            (b'\n', _) => {
                line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Tokens from `start` up to the closer (`}}` or `%}` at brace depth 0), or to the end; returns
/// the block and the index after the closer.
fn tokens<'a>(source: &'a str, start: usize, line: &mut usize, closer: Option<char>) -> (Block<'a>, usize) {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                *line += 1;
                i += 1;
            }
            b if b.is_ascii_whitespace() => i += 1,
            b'\'' | b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != c {
                    if bytes[j] == b'\\' {
                        j += 1;
                    } else if bytes[j] == b'\n' {
                        *line += 1;
                    }
                    j += 1;
                }
                tokens.push((Tok::Literal, *line));
                i = j + 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                tokens.push((Tok::Ident(&source[i..j]), *line));
                i = j;
            }
            b if b.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push((Tok::Literal, *line));
            }
            _ => {
                let close = closer.map(|k| k as u8);
                let at_close =
                    |k: usize| close.is_some_and(|cl| bytes.get(k) == Some(&cl) && bytes.get(k + 1) == Some(&b'}'));
                // `-}}`/`+%}` (whitespace control) or the closer itself, outside braces.
                if depth == 0 && at_close(i) {
                    return (Block { statement: false, tokens }, i + 2);
                }
                if depth == 0 && (c == b'-' || c == b'+') && at_close(i + 1) {
                    return (Block { statement: false, tokens }, i + 3);
                }
                if c == b'{' {
                    depth += 1;
                } else if c == b'}' {
                    depth = depth.saturating_sub(1);
                }
                // Multi-byte characters are not names; skip the whole character.
                let ch = source[i..].chars().next().unwrap_or(' ');
                tokens.push((Tok::Punct(ch), *line));
                i += ch.len_utf8();
            }
        }
    }
    (Block { statement: false, tokens }, bytes.len())
}

fn scan_block(block: &Block<'_>, calls: &mut Vec<Called>, defined: &mut Vec<String>) {
    let toks = &block.tokens;
    let ident = |k: usize| match toks.get(k) {
        Some((Tok::Ident(n), _)) => Some(*n),
        _ => None,
    };
    let punct = |k: usize, c: char| matches!(toks.get(k), Some((Tok::Punct(p), _)) if *p == c);
    // Leading whitespace control (`{%- … %}`) is not part of the statement.
    let first = usize::from(punct(0, '-') || punct(0, '+'));
    if block.statement {
        match ident(first) {
            Some("macro") | Some("set") => {
                if let Some(name) = ident(first + 1) {
                    defined.push(name.to_string());
                }
            }
            Some("filter") => {
                if let Some(name) = ident(first + 1) {
                    calls.push(Called { what: Use::Filter, name: name.to_string(), line: toks[first + 1].1 });
                }
            }
            _ => {}
        }
    }
    for (k, (tok, line)) in toks.iter().enumerate() {
        let Tok::Ident(name) = tok else { continue };
        let line = *line;
        let after_dot = k > 0 && punct(k - 1, '.');
        if k > 0 && punct(k - 1, '|') {
            calls.push(Called { what: Use::Filter, name: name.to_string(), line });
        } else if *name == "is" {
            let test = if ident(k + 1) == Some("not") { k + 2 } else { k + 1 };
            if let Some(test_name) = ident(test) {
                calls.push(Called { what: Use::Test, name: test_name.to_string(), line: toks[test].1 });
            }
        } else if punct(k + 1, '(') && !after_dot && !KEYWORDS.contains(name) {
            let is_test = (k > 0 && ident(k - 1) == Some("is"))
                || (k > 1 && ident(k - 1) == Some("not") && ident(k - 2) == Some("is"));
            let defines = k > 0 && (ident(k - 1) == Some("macro"));
            if !is_test && !defines {
                calls.push(Called { what: Use::Function, name: name.to_string(), line });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<(Use, &'static str, usize)> {
        let (calls, _) = called(source, false);
        calls.into_iter().map(|c| (c.what, &*Box::leak(c.name.into_boxed_str()), c.line)).collect()
    }

    #[test]
    fn filters_tests_and_functions_are_found() {
        assert_eq!(names("{{ x | sluggify }}"), [(Use::Filter, "sluggify", 1)]);
        assert_eq!(
            names("{{ x|trim|replace('a', 'b') }} {{ t('name', 'es') | upper }}"),
            [(Use::Filter, "trim", 1), (Use::Filter, "replace", 1), (Use::Function, "t", 1), (Use::Filter, "upper", 1)]
        );
        assert_eq!(
            names("{% if x is not definedd %}\n{{ range(3) | join(',') }}{% endif %}"),
            [(Use::Test, "definedd", 1), (Use::Function, "range", 2), (Use::Filter, "join", 2)]
        );
        assert_eq!(names("{% filter upper -%} x {%- endfilter %}"), [(Use::Filter, "upper", 1)]);
        // Methods, keywords before parentheses, strings and comments are not calls.
        assert_eq!(names("{{ x.items() }}{% if not (a or b) %}{% endif %}{{ '| nope(' }}{# y | z #}"), []);
        assert_eq!(names("{% raw %}{{ x | nope }}{% endraw %}"), []);
        assert_eq!(
            names("{{- x | slug -}} {{ {'a': {'b': 1}} | tojson }}"),
            [(Use::Filter, "slug", 1), (Use::Filter, "tojson", 1)]
        );
        let (calls, defined) = called("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}", false);
        assert_eq!(defined, ["m"]);
        assert_eq!(calls, [Called { what: Use::Function, name: "m".into(), line: 1 }]);
        let (calls, _) = called("price > 0 and name is startingwith('A') and x | lenght > 1", true);
        let calls: Vec<_> = calls.iter().map(|c| (c.what, c.name.as_str())).collect();
        assert_eq!(calls, [(Use::Test, "startingwith"), (Use::Filter, "lenght")]);
    }
}
