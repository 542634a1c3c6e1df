//! catsync: product-catalog synchronization as code — YAML pipelines from a PIM (Sales Layer) to a
//! store (Shopify), validated, planned and applied incrementally. See `ARCHITECTURE.md`.

pub mod adopt;
pub mod canonical;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod diagnostics;
pub mod document;
pub mod drift;
pub mod engine;
pub mod error;
pub mod executor;
pub mod file_stamp;
pub mod gen;
pub mod graph;
pub mod json_object;
pub mod last_sent;
pub mod model;
pub mod plan;
/// The sandbox store: the `catsync-sandbox` crate (`crates/sandbox/`).
pub use catsync_sandbox as sandbox;
pub mod retry;
pub mod sandbox_host;
pub mod scenario;
pub mod schedule;
pub mod serve;
pub mod shopify;
pub mod stages;
pub mod state;
pub mod store_read;
pub mod template;
pub mod template_names;
