//! Secrets and `${NAME}` references: values come from the environment (or a file) and are only
//! ever shown as their reference and digest.

use std::fmt;
use std::path::Path;

/// A resolved secret. Its value is reachable only through [`Secret::expose`]; `Debug` and
/// `Display` show the reference and a digest, so it cannot leak through logs or plans.
#[derive(Clone)]
pub struct Secret {
    reference: String,
    value: String,
    digest: String,
}

impl Secret {
    pub fn new(reference: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        let digest = blake3::derive_key("catsync secret digest v1", value.as_bytes());
        let digest = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Secret { reference: reference.into(), value, digest }
    }

    /// The secret value, for the one place that sends it (an HTTP header, a signature).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// How the pipeline refers to it, e.g. `${SHOPIFY_TOKEN}`.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// A short digest of the value: lets a pinned config notice a rotated secret without storing it.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (redacted, digest {})", self.reference, self.digest)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where `${...}` references are resolved from. Tests and `validate` pass their own.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A problem resolving a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    MissingVar(String),
    UnreadableFile(String, String),
    Unterminated,
}

impl RefError {
    pub fn message(&self) -> String {
        match self {
            RefError::MissingVar(name) => format!("environment variable `{name}` is not set"),
            RefError::UnreadableFile(path, err) => format!("cannot read secret file `{path}`: {err}"),
            RefError::Unterminated => "unterminated `${` reference".to_string(),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            RefError::MissingVar(name) => {
                format!("set it (`export {name}=...`), give a default with `${{{name}:-value}}`, or select another environment with `--env`")
            }
            RefError::UnreadableFile(..) => "check the path; it is relative to the pipeline file".to_string(),
            RefError::Unterminated => "close the reference with `}`".to_string(),
        }
    }
}

/// Replaces every `${NAME}` / `${NAME:-default}` in `text`. `$$` escapes a dollar sign.
pub fn interpolate(text: &str, env: &dyn EnvSource) -> Result<String, RefError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or(RefError::Unterminated)?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (env.var(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(RefError::MissingVar(name.to_string())),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves a secret reference: `${NAME}` from the environment or `${file:path}` (relative to
/// `base_dir`), trailing newline trimmed.
pub fn resolve_secret(reference: &str, env: &dyn EnvSource, base_dir: &Path) -> Result<Secret, RefError> {
    let inner = reference.strip_prefix("${").and_then(|r| r.strip_suffix('}')).ok_or(RefError::Unterminated)?;
    let value = if let Some(path) = inner.strip_prefix("file:") {
        let full = base_dir.join(path);
        std::fs::read_to_string(&full)
            .map_err(|e| RefError::UnreadableFile(path.to_string(), e.to_string()))?
            .trim_end_matches(['\n', '\r'])
            .to_string()
    } else {
        env.var(inner).ok_or_else(|| RefError::MissingVar(inner.to_string()))?
    };
    Ok(Secret::new(reference, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Vars(HashMap<&'static str, &'static str>);
    impl EnvSource for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    #[test]
    fn interpolates_defaults_and_escapes() {
        let env = Vars(HashMap::from([("HOST", "shop.example")]));
        assert_eq!(interpolate("https://${HOST}/x", &env).unwrap(), "https://shop.example/x");
        assert_eq!(interpolate("${PORT:-8787}", &env).unwrap(), "8787");
        assert_eq!(interpolate("cost $$5", &env).unwrap(), "cost $5");
        assert_eq!(interpolate("${NOPE}", &env), Err(RefError::MissingVar("NOPE".into())));
    }

    #[test]
    fn secrets_never_show_their_value() {
        let env = Vars(HashMap::from([("SHOPIFY_TOKEN", "shpat_supersecret")]));
        let s = resolve_secret("${SHOPIFY_TOKEN}", &env, Path::new(".")).unwrap();
        assert_eq!(s.expose(), "shpat_supersecret");
        let shown = format!("{s} {s:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("${SHOPIFY_TOKEN}"));
    }
}
