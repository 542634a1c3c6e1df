//! The integration-test binary: one module per feature, all driving the real `catsync` binary
//! or the library, hermetically (temp dirs, cleared environment).

mod support;

mod browser;
mod commands;
mod deploy;
mod drift;
mod drift_plan;
mod first_hour;
mod fixture_replay;
mod images;
mod import;
mod mid_run;
mod pipelines;
mod plan;
mod properties;
mod reliability;
mod saleslayer_http;
mod sandbox;
mod schema_agreement;
mod serve;
mod serve_windows;
mod shopify_documents;
mod state_golden;
mod sync;
mod validate;
