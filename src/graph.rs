//! Renders a compiled pipeline's stage DAG as Graphviz DOT or Mermaid.

use std::fmt::Write as _;

use petgraph::visit::EdgeRef;

use crate::config::CompiledPipeline;

/// Output formats of `catsync graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// A stage's role by its type: `source`, `transform` or `export` (node shapes and colours, so
/// they read apart at a glance).
pub fn role(type_name: &str) -> &'static str {
    match type_name {
        "saleslayer" | "csv" | "jsonl" => "source",
        "shopify" | "jsonl_export" => "export",
        _ => "transform",
    }
}

fn edges(p: &CompiledPipeline) -> Vec<(usize, usize)> {
    let mut e: Vec<(usize, usize)> =
        p.graph.edge_references().map(|e| (p.graph[e.source()], p.graph[e.target()])).collect();
    e.sort();
    e
}

pub fn render(p: &CompiledPipeline, format: GraphFormat) -> String {
    match format {
        GraphFormat::Dot => dot(p),
        GraphFormat::Mermaid => mermaid(p),
    }
}

fn dot(p: &CompiledPipeline) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&p.name));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box, style=rounded, fontname=\"Helvetica\"];");
    for &idx in &p.order {
        let s = &p.stages[idx];
        let shape = match role(s.type_name) {
            "source" => "cylinder",
            "export" => "box3d",
            _ => "box",
        };
        let label = format!("{}\\n{}", s.name, s.type_name);
        let _ = writeln!(out, "  {} [label=\"{label}\", shape={shape}];", quote(&s.name));
    }
    for (from, to) in edges(p) {
        let _ = writeln!(out, "  {} -> {};", quote(&p.stages[from].name), quote(&p.stages[to].name));
    }
    out.push_str("}\n");
    out
}

fn mermaid(p: &CompiledPipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for &idx in &p.order {
        let s = &p.stages[idx];
        let label = format!("\"{}<br/>{}\"", s.name, s.type_name);
        let node = match role(s.type_name) {
            "source" => format!("[({label})]"),
            "export" => format!("[/{label}/]"),
            _ => format!("[{label}]"),
        };
        let _ = writeln!(out, "  s{idx}{node}");
    }
    for (from, to) in edges(p) {
        let _ = writeln!(out, "  s{from} --> s{to}");
    }
    out
}
