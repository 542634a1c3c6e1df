//! The domain types the layers share — item kinds, a source's rows and cells, planned changes —
//! kept apart from the code that makes or reads them, so that sources, the catalog, stages, plans
//! and the state depend on this module instead of on each other.

pub mod change;
pub mod source;

/// The three kinds of catalog items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Category,
    Product,
    Variant,
}

impl ItemKind {
    pub const ALL: [ItemKind; 3] = [ItemKind::Category, ItemKind::Product, ItemKind::Variant];

    /// `categories`, `products`, `variants`: the key of per-kind sections in pipeline files.
    pub fn plural(self) -> &'static str {
        match self {
            ItemKind::Category => "categories",
            ItemKind::Product => "products",
            ItemKind::Variant => "variants",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            ItemKind::Category => "category",
            ItemKind::Product => "product",
            ItemKind::Variant => "variant",
        }
    }
}

/// Parses `KIND:ID`.
pub fn parse_item(text: &str) -> Result<(ItemKind, String), String> {
    let (kind, id) =
        text.split_once(':').ok_or_else(|| format!("`{text}` is not KIND:ID (for example `product:2001`)"))?;
    let kind = match kind {
        "category" | "collection" => ItemKind::Category,
        "product" => ItemKind::Product,
        "variant" => ItemKind::Variant,
        other => return Err(format!("unknown kind `{other}`: use `category`, `product` or `variant`")),
    };
    if id.is_empty() {
        return Err(format!("`{text}` has no id"));
    }
    Ok((kind, id.to_string()))
}
