//! Tests of the sandbox (`catsync::sandbox`) over real HTTP on loopback: conformance with the
//! recorded Shopify captures, schema agreement with the real Admin schema, throttling, upserts,
//! bulk operations, faults, persistence and the `catsync sandbox` command.

mod behaviour;
mod bulk;
mod cli;
mod conformance;
mod faults;
mod reads;
mod replay;
mod schema;
mod throttle;

use std::time::Duration;

use catsync::sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

/// The API version tests speak.
pub const VERSION: &str = "2026-07";

/// A sandbox on an ephemeral port and a blocking HTTP client for it.
pub struct Client {
    pub sandbox: Sandbox,
    pub http: reqwest::blocking::Client,
    pub token: String,
}

impl Client {
    pub fn start(config: SandboxConfig) -> Client {
        let sandbox = Sandbox::start(config).expect("start the sandbox");
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        Client { sandbox, http, token: "test-token".to_string() }
    }

    pub fn new() -> Client {
        Client::start(SandboxConfig::default())
    }

    /// Sends a GraphQL request; returns the HTTP status and the parsed body.
    pub fn send(&self, query: &str, variables: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.sandbox.graphql_url(VERSION))
            .header("X-Shopify-Access-Token", &self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .expect("request to the sandbox");
        let status = response.status().as_u16();
        let text = response.text().expect("response body");
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON response ({status}): {text}")))
    }

    /// Sends a request that must succeed at the HTTP level; returns the body.
    #[track_caller]
    pub fn post(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.send(query, &variables);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Sends a request that must have no top-level errors; returns `data`.
    #[track_caller]
    pub fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.post(query, variables);
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }
}

/// `productSet` with an identifier by handle, selecting what most tests need.
pub const UPSERT: &str = "mutation Upsert($h: String!, $input: ProductSetInput!) {
  productSet(identifier: {handle: $h}, input: $input) {
    product { id handle title status tags variants(first: 10) { nodes { id title sku price } } }
    userErrors { field message code }
  }
}";
