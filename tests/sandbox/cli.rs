//! `catsync sandbox` as a user runs it: it prints its address, serves until stopped, honours
//! `--token`, keeps `--data` across restarts (saved on SIGTERM), and refuses bad flags.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::VERSION;
use crate::support::Test;

struct Running {
    child: Child,
    base: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_catsync"))
            .arg("sandbox")
            .args(["--port", "0"])
            .args(args)
            .env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start catsync sandbox");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("first line");
        // Keep draining so the sandbox never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let base = first.trim().strip_prefix("sandbox listening on ").expect("address line").to_string();
        Running { child, base }
    }

    fn post(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let http =
            reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client");
        let r = http
            .post(format!("{}/admin/api/{VERSION}/graphql.json", self.base))
            .header("X-Shopify-Access-Token", token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// Sends SIGTERM (the sandbox saves and exits 0) and waits.
    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_command_serves_a_store_that_keeps_its_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store.json");
    let data = data.to_str().expect("path");
    let set = "mutation($input: ProductSetInput!) { productSet(identifier: {handle: \"cli\"}, input: $input) { product { id } } }";
    let server = Running::start(&["--data", data, "--token", "secret"]);
    let (status, _) = server.post("other", "{ shop { name } }", json!({}));
    assert_eq!(status, 401);
    let (status, body) = server.post("secret", set, json!({"input": {"handle": "cli", "title": "From the CLI"}}));
    assert_eq!(status, 200, "{body}");
    assert!(server.terminate().success(), "SIGTERM stops the sandbox cleanly");
    let server = Running::start(&["--data", data]);
    let (_, body) = server.post("any", "{ productByIdentifier(identifier: {handle: \"cli\"}) { title } }", json!({}));
    assert_eq!(body["data"]["productByIdentifier"]["title"], "From the CLI");
}

#[test]
fn bad_flags_are_refused() {
    let out = Test::new().args(["sandbox", "--faults", "5xx=2"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("fault `5xx` needs a probability between 0 and 1, got `2`"), "{}", out.stderr);
    let out = Test::new().args(["sandbox", "--bucket", "0"]).run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("`--bucket` and `--restore-rate` must be positive numbers"), "{}", out.stderr);
}
