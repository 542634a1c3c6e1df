//! The pipelines shipped in `pipelines/` are valid, and the demo's DAG is what the README shows.

use crate::support::{repo, Test};

#[test]
fn shipped_pipelines_validate() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catsync"))
        .args(["validate"])
        .current_dir(repo())
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("pipelines/demo.yaml: ok"), "{stdout}");
    assert!(stdout.contains("pipelines/acme-erp-prices.yaml: ok"), "{stdout}");
}

#[test]
fn realistic_example_validates_in_each_environment() {
    let file = repo().join("pipelines/acme-erp-prices.yaml");
    let file = file.to_str().unwrap();
    let out = Test::new().env("SANDBOX_TOKEN", "t").args(["--env", "test", "validate", file]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = Test::new()
        .env("SHOPIFY_STORE", "https://acme.myshopify.com")
        .env("SHOPIFY_TOKEN", "shpat_x")
        .args(["--env", "production", "validate", file])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn demo_graph_is_valid_dot() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catsync"))
        .args(["graph", "pipelines/demo.yaml", "--format", "dot"])
        .current_dir(repo())
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).unwrap();
    // Structural check: balanced braces, every edge names declared nodes.
    assert!(dot.starts_with("digraph \"demo\" {\n") && dot.ends_with("}\n"), "{dot}");
    let nodes: Vec<&str> =
        dot.lines().filter(|l| l.contains("[label=")).map(|l| l.trim().split(' ').next().unwrap()).collect();
    assert_eq!(nodes, ["\"pim\"", "\"shopify_docs\"", "\"store\"", "\"audit\""]);
    for edge in dot.lines().filter(|l| l.contains("->")) {
        let (a, b) = edge.trim().trim_end_matches(';').split_once(" -> ").unwrap();
        assert!(nodes.contains(&a) && nodes.contains(&b), "{edge}");
    }
    // Graphviz itself, when installed, must accept it.
    if let Ok(mut child) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "graphviz rejected:\n{dot}");
    }
}
