//! A pipeline's stage DAG drawn on the status page as inline SVG, laid out here: stages in
//! columns by depth (a stage one column right of its deepest input), edges as curves between
//! them. The page loads nothing from the network (its Content-Security-Policy allows no script
//! or style but its own), so mermaid is not used; the page offers the mermaid source beside the
//! drawing. Only presentation attributes, no `style` (the policy forbids inline styles).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::page::esc;

const NODE_WIDTH: usize = 150;
const NODE_HEIGHT: usize = 38;
const COLUMN_GAP: usize = 56;
const ROW_GAP: usize = 14;
/// Longest name shown whole (longer ones are cut, the whole one in the node's tooltip).
const NAME_CHARS: usize = 20;

/// The SVG of `stages` (the view's `graph.stages`: name, type, role, inputs, in topological
/// order).
pub(super) fn svg(stages: &[Value]) -> String {
    let name = |s: &Value| s["name"].as_str().unwrap_or("").to_string();
    let mut at: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut rows_in: Vec<usize> = Vec::new();
    for s in stages {
        let depth = s["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str().and_then(|i| at.get(i)))
            .map(|(column, _)| column + 1)
            .max()
            .unwrap_or(0);
        if rows_in.len() <= depth {
            rows_in.resize(depth + 1, 0);
        }
        at.insert(name(s), (depth, rows_in[depth]));
        rows_in[depth] += 1;
    }
    let columns = rows_in.len().max(1);
    let rows = rows_in.iter().copied().max().unwrap_or(1);
    let width = columns * NODE_WIDTH + (columns - 1) * COLUMN_GAP + 2;
    let height = rows * NODE_HEIGHT + rows.saturating_sub(1) * ROW_GAP + 2;
    let corner =
        |(column, row): (usize, usize)| (1 + column * (NODE_WIDTH + COLUMN_GAP), 1 + row * (NODE_HEIGHT + ROW_GAP));
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="dag" role="img" aria-label="stage graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#57606a"/></marker></defs>"##
    );
    for s in stages {
        let Some(&to) = at.get(&name(s)) else { continue };
        for input in s["inputs"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let Some(&from) = at.get(input) else { continue };
            let ((x1, y1), (x2, y2)) = (corner(from), corner(to));
            let (x1, y1, x2, y2) = (x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2, x2 - 1, y2 + NODE_HEIGHT / 2);
            let bend = (x2 - x1) / 2;
            let _ = write!(
                out,
                r##"<path d="M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}" fill="none" stroke="#8c959f" stroke-width="1.5" marker-end="url(#arrow)"/>"##,
                x1 + bend,
                x2 - bend
            );
        }
    }
    for s in stages {
        let Some(&cell) = at.get(&name(s)) else { continue };
        let (x, y) = corner(cell);
        let fill = match s["role"].as_str() {
            Some("source") => "#ddf4ff",
            Some("export") => "#dafbe1",
            _ => "#fff8c5",
        };
        let full = name(s);
        let shown: String = if full.chars().count() > NAME_CHARS {
            full.chars().take(NAME_CHARS - 1).chain(['…']).collect()
        } else {
            full.clone()
        };
        let _ = write!(
            out,
            r##"<g><title>{} ({})</title><rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" fill="{fill}" stroke="#8c959f"/><text x="{}" y="{}" text-anchor="middle" font-family="system-ui, sans-serif" font-size="12" font-weight="600" fill="#1b1f23">{}</text><text x="{}" y="{}" text-anchor="middle" font-family="system-ui, sans-serif" font-size="11" fill="#57606a">{}</text></g>"##,
            esc(&full),
            esc(s["type"].as_str().unwrap_or("")),
            x + NODE_WIDTH / 2,
            y + 16,
            esc(&shown),
            x + NODE_WIDTH / 2,
            y + 30,
            esc(s["type"].as_str().unwrap_or("")),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_stand_in_columns_by_depth_with_an_edge_per_input() {
        let stages = json!([
            {"name": "pim", "type": "saleslayer", "role": "source", "inputs": []},
            {"name": "erp", "type": "csv", "role": "source", "inputs": []},
            {"name": "priced", "type": "join", "role": "transform", "inputs": ["pim", "erp"]},
            {"name": "docs", "type": "map", "role": "transform", "inputs": ["priced"]},
            {"name": "store", "type": "shopify", "role": "export", "inputs": ["docs"]},
            {"name": "an <odd> & very long stage name", "type": "jsonl_export", "role": "export", "inputs": ["docs"]},
        ]);
        let svg = svg(stages.as_array().unwrap());
        // Four columns (sources, join, map, exports), two rows.
        assert!(
            svg.starts_with(r#"<svg class="dag" role="img" aria-label="stage graph" width="770" height="92""#),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect ").count(), 6);
        assert_eq!(svg.matches("marker-end=").count(), 5, "one edge per input");
        // `priced` in the second column, first row; `store` and the JSONL export one above the other.
        assert!(svg.contains(r#"<rect x="207" y="1" "#), "{svg}");
        assert!(svg.contains(r#"<rect x="619" y="1" "#) && svg.contains(r#"<rect x="619" y="53" "#), "{svg}");
        assert!(svg.contains("<title>an &lt;odd&gt; &amp; very long stage name (jsonl_export)</title>"), "{svg}");
        assert!(svg.contains(">an &lt;odd&gt; &amp; very lon…</text>"), "{svg}");
        assert!(!svg.contains("style="), "no inline style: the page's policy forbids it");
    }
}
