//! Parsing request documents: syntax errors in Shopify's `PARSE_ERROR` shape, and positions of
//! AST nodes as 1-based line/column pairs.

use apollo_compiler::ast;
use apollo_compiler::parser::SourceMap;
use apollo_compiler::Node;
use apollo_parser::{Lexer, TokenKind};

use super::response::{GqlError, Pos};

/// Documents larger than this many tokens are refused (a guard against pathological input).
const TOKEN_LIMIT: usize = 200_000;
const RECURSION_LIMIT: usize = 200;

/// A parsed request document.
pub struct Document {
    pub ast: ast::Document,
}

impl Document {
    /// The position of a node, if it has one.
    pub fn pos<T>(&self, node: &Node<T>) -> Option<Pos> {
        position(node, &self.ast.sources)
    }

    pub fn operations(&self) -> impl Iterator<Item = &Node<ast::OperationDefinition>> {
        self.ast.definitions.iter().filter_map(|d| match d {
            ast::Definition::OperationDefinition(op) => Some(op),
            _ => None,
        })
    }

    pub fn fragments(&self) -> impl Iterator<Item = &Node<ast::FragmentDefinition>> {
        self.ast.definitions.iter().filter_map(|d| match d {
            ast::Definition::FragmentDefinition(f) => Some(f),
            _ => None,
        })
    }

    pub fn fragment(&self, name: &str) -> Option<&Node<ast::FragmentDefinition>> {
        self.fragments().find(|f| f.name == name)
    }
}

pub fn position<T>(node: &Node<T>, sources: &SourceMap) -> Option<Pos> {
    node.line_column_range(sources).map(|r| Pos { line: r.start.line, column: r.start.column })
}

/// Parses `source`; a syntax error comes back as Shopify reports it
/// (`syntax error, unexpected end of file at [3, 5]`, code `PARSE_ERROR`).
pub fn parse(source: &str) -> Result<Document, GqlError> {
    let tree = apollo_parser::Parser::new(source).token_limit(TOKEN_LIMIT).recursion_limit(RECURSION_LIMIT).parse();
    if let Some(err) = tree.errors().next() {
        return Err(syntax_error(source, err));
    }
    match ast::Document::parse(source, "request.graphql") {
        Ok(ast) => {
            if ast.definitions.is_empty() {
                return Err(GqlError::new("syntax error, unexpected end of file at [1, 1]")
                    .at(Some(Pos { line: 1, column: 1 }))
                    .code("PARSE_ERROR"));
            }
            Ok(Document { ast })
        }
        Err(with_errors) => {
            let message = with_errors.errors.iter().next().map(|d| d.error.to_string()).unwrap_or_default();
            Err(GqlError::new(format!("syntax error, {message}")).code("PARSE_ERROR"))
        }
    }
}

fn syntax_error(source: &str, err: &apollo_parser::Error) -> GqlError {
    if err.is_limit() {
        return GqlError::new(format!("syntax error, {}", err.message())).code("PARSE_ERROR");
    }
    let (tokens, _) = Lexer::new(source).lex();
    let significant = |t: &&apollo_parser::Token| {
        !matches!(t.kind(), TokenKind::Whitespace | TokenKind::Comment | TokenKind::Comma | TokenKind::Eof)
    };
    let (what, index) = if err.is_eof() || err.index() >= source.len() {
        // Shopify points an unexpected end of file at the start of the last token.
        let last = tokens.iter().rev().find(significant).map_or(0, |t| t.index());
        ("end of file".to_string(), last)
    } else {
        let token = tokens.iter().filter(significant).find(|t| t.index() + t.data().len() > err.index());
        match token {
            Some(t) => (token_name(t.kind(), t.data()), t.index()),
            None => ("end of file".to_string(), err.index()),
        }
    };
    let pos = line_column(source, index);
    GqlError::new(format!("syntax error, unexpected {what} at [{}, {}]", pos.line, pos.column))
        .at(Some(pos))
        .code("PARSE_ERROR")
}

/// The token names of Shopify's (bison) GraphQL parser.
fn token_name(kind: TokenKind, data: &str) -> String {
    let name = match kind {
        TokenKind::Bang => "BANG",
        TokenKind::Dollar => "VAR_SIGN",
        TokenKind::Amp => "AMP",
        TokenKind::Spread => "ELLIPSIS",
        TokenKind::Colon => "COLON",
        TokenKind::Eq => "EQUALS",
        TokenKind::At => "DIR_SIGN",
        TokenKind::LParen => "LPAREN",
        TokenKind::RParen => "RPAREN",
        TokenKind::LBracket => "LBRACKET",
        TokenKind::RBracket => "RBRACKET",
        TokenKind::LCurly => "LCURLY",
        TokenKind::RCurly => "RCURLY",
        TokenKind::Pipe => "PIPE",
        TokenKind::StringValue => "STRING",
        TokenKind::Int => "INT",
        TokenKind::Float => "FLOAT",
        TokenKind::Name => match data {
            "query" => "QUERY",
            "mutation" => "MUTATION",
            "subscription" => "SUBSCRIPTION",
            "fragment" => "FRAGMENT",
            "on" => "ON",
            "true" => "TRUE",
            "false" => "FALSE",
            "null" => "NULL",
            _ => "IDENTIFIER",
        },
        _ => "UNKNOWN_CHAR",
    };
    match kind {
        TokenKind::Name | TokenKind::StringValue | TokenKind::Int | TokenKind::Float => {
            format!("{name} (\"{}\")", data.trim_matches('"'))
        }
        _ => format!("{name} (\"{data}\")"),
    }
}

/// The 1-based line and column (in characters) of byte `index`.
pub fn line_column(source: &str, index: usize) -> Pos {
    let before = &source[..index.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_file_points_at_the_last_token() {
        let err = parse("query GraphqlBaseValidationInvalidSyntax {\n  shop {\n    id\n").err().unwrap();
        assert_eq!(err.message, "syntax error, unexpected end of file at [3, 5]");
        assert_eq!(err.locations, vec![Pos { line: 3, column: 5 }]);
        assert_eq!(err.code_str(), Some("PARSE_ERROR"));
    }

    #[test]
    fn unexpected_tokens_are_named() {
        let err = parse("query { shop { } }").err().unwrap();
        assert!(err.message.starts_with("syntax error, unexpected RCURLY"), "{}", err.message);
    }

    #[test]
    fn an_empty_document_is_a_syntax_error() {
        assert!(parse("  ").is_err());
    }
}
