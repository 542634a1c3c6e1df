//! A newcomer's first hour: the state and the kill switch need no secrets, piping a plan into
//! `head` ends quietly, the plan is coloured on a terminal (under a pseudo-terminal) and nowhere
//! else, naming an item the catalog does not have says so, and each option is offered only where
//! it means something.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use crate::support::{repo, Test, GOOD_PIPELINE};

/// [`GOOD_PIPELINE`] exporting to a real store, its token from `SHOPIFY_TOKEN`, with a
/// `production` environment taking another token.
fn pipeline_with_a_token() -> String {
    let base = GOOD_PIPELINE
        .replace("    url: sandbox://shop", "    url: https://acme.myshopify.com\n    token: ${SHOPIFY_TOKEN}");
    format!("{base}environments:\n  production:\n    store:\n      token: ${{PRODUCTION_TOKEN}}\n")
}

#[test]
fn status_log_and_the_kill_switch_work_without_the_token() {
    // No variable is set: the test environment is cleared.
    let t = Test::pipeline(&pipeline_with_a_token());
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();

    let out = cli(&["status", "p.yaml"]);
    out.succeeds(
        "
        pipeline `shop` (environment `default`)
          active: yes
          source `pim`: cursor none (never run)
          last runs:
            none
        ",
    );
    assert_eq!(out.stderr, "");
    cli(&["log", "p.yaml"]).succeeds("no runs yet for pipeline `shop`\n");
    cli(&["log", "p.yaml", "--format", "json"]).succeeds("[]\n");

    cli(&["deactivate", "p.yaml"])
        .succeeds("Pipeline `shop` is deactivated in environment `default`: `catsync run` exports nothing until `catsync activate`.\n");
    let out = cli(&["status", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n  active: no (deactivated since "), "{}", out.stdout);
    cli(&["activate", "p.yaml"]).succeeds("Pipeline `shop` is active in environment `default`.\n");
    cli(&["status", "p.yaml"]).succeeds(
        "
        pipeline `shop` (environment `default`)
          active: yes
          source `pim`: cursor none (never run)
          last runs:
            none
        ",
    );

    // An environment whose token is not set either; the kill switch is per environment.
    cli(&["--env", "production", "deactivate", "p.yaml"])
        .succeeds("Pipeline `shop` is deactivated in environment `production`: `catsync run` exports nothing until `catsync activate`.\n");
    let out = cli(&["--env", "production", "status", "p.yaml"]);
    assert!(out.stdout.starts_with("pipeline `shop` (environment `production`)\n  active: no"), "{}", out.stdout);
    assert!(cli(&["status", "p.yaml"]).stdout.contains("\n  active: yes\n"));
    // An environment the pipeline does not declare is still an error.
    let out = cli(&["--env", "prod", "status", "p.yaml"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stderr.contains("unknown environment `prod`"), "{}", out.stderr);

    // Sending anything still needs the token, and says which one.
    let out = cli(&["plan", "p.yaml"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stderr.contains("environment variable `SHOPIFY_TOKEN` is not set"), "{}", out.stderr);
}

/// A pipeline over a synthetic catalog of 1000 products (`catsync gen --size S`): its products
/// mapped with `product_fields` added, sent to `exports` (stages in YAML).
pub(crate) fn synthetic_project(product_fields: &str, exports: &str) -> Test {
    let text = r#"version: 1
name: big
parameters:
  export_status: visible
  deletions: disabled
stages:
  pim:
    type: saleslayer
    files: [exports/00-full.json]
  docs:
    type: map
    inputs: [pim]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
PRODUCT_FIELDS    variants:
      sku: "{{ format_sku }}"
      options: { Color: "{{ color }}", Size: "{{ size }}" }
"#
    .replace("PRODUCT_FIELDS", product_fields);
    let t = Test::new().file("p.yaml", &format!("{text}{exports}"));
    let out = Test::at(t.path()).args(["gen", "--size", "S", "--out", "exports"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    t
}

/// [`synthetic_project`] with two JSONL exports, so that its plan is far longer than a pipe holds.
fn big_plan_project() -> Test {
    synthetic_project(
        "",
        "  first:\n    type: jsonl_export\n    inputs: [docs]\n    path: out/first.jsonl\n  second:\n    type: jsonl_export\n    inputs: [docs]\n    path: out/second.jsonl\n",
    )
}

#[test]
fn a_plan_piped_into_head_ends_quietly() {
    let t = big_plan_project();
    let whole = Test::at(t.path()).args(["plan", "p.yaml"]).run();
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    // Far more than a pipe holds (64 KiB), so `catsync` is still writing when the reader goes.
    assert!(whole.stdout.len() > 100 * 1024, "the plan is too short: {} bytes", whole.stdout.len());

    // `catsync plan p.yaml | head -1`: the reader takes one line and goes away.
    let mut child = Command::new(env!("CARGO_BIN_EXE_catsync"))
        .args(["plan", "p.yaml"])
        .current_dir(t.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run catsync");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("read a line");
    assert_eq!(first, "Plan for pipeline `big` (incremental)\n");
    // The reader is dropped here: stdout is closed.
    let out = child.wait_with_output().expect("wait for catsync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

/// The demo mapping over the ACME fixtures with a JSONL export only, deletions enabled; the
/// source directory `exports/` starts with the full export.
fn acme_project() -> Test {
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).expect("the demo pipeline");
    let pipeline = demo
        .replace("deletions: disabled", "deletions: enabled")
        .replace(r#"files: ["../fixtures/saleslayer/acme/00-full.json"]"#, r#"files: ["exports/*.json"]"#)
        .replace("path: ../.catsync/demo-audit.jsonl", "path: out/audit.jsonl");
    let start = pipeline.find("  store:").expect("a store stage");
    let end = pipeline.find("  audit:").expect("an audit stage");
    let pipeline = format!("{}{}", &pipeline[..start], &pipeline[end..]);
    let t = Test::new().file("p.yaml", &pipeline);
    add_export(&t, "00-full.json");
    t
}

fn add_export(t: &Test, name: &str) {
    std::fs::create_dir_all(t.path().join("exports")).unwrap();
    std::fs::copy(repo().join("fixtures/saleslayer/acme").join(name), t.path().join("exports").join(name)).unwrap();
}

#[test]
fn explaining_an_item_the_catalog_does_not_have_says_so() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    cli(&["explain", "p.yaml", "product:999"]).fails(
        1,
        "error: product 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    cli(&["explain", "p.yaml", "variant:999"]).fails(
        1,
        "error: variant 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    cli(&["explain", "p.yaml", "collection:999"]).fails(
        1,
        "error: category 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    let out = cli(&["explain", "p.yaml", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n    planned: create\n"), "{}", out.stdout);

    // After a run with nothing new, an item is still explained, not just named.
    assert_eq!(cli(&["run", "p.yaml"]).code, 0);
    let out = cli(&["explain", "p.yaml", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n    scope: in scope\n"), "{}", out.stdout);
    assert!(out.stdout.contains("\n    unchanged since the last export: nothing to send (R06)\n"), "{}", out.stdout);
    cli(&["explain", "p.yaml", "product:999"]).fails(
        1,
        "error: product 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );

    // A product deleted from the source is still known: the export has sent it.
    add_export(&t, "06-delete-product.json");
    let out = cli(&["explain", "p.yaml", "product:2013"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n    planned: delete\n"), "{}", out.stdout);
}

#[test]
fn planning_only_an_item_the_catalog_does_not_have_says_so() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    cli(&["plan", "p.yaml", "--only", "product:9999999"]).fails(
        1,
        "error: product 9999999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    cli(&["plan", "p.yaml", "--only", "product:2001", "--only", "variant:9", "--only", "category:8"]).fails(
        1,
        "error: variant 9 and category 8 do not exist in the catalog of pipeline `demo` (no source has them, and no export has sent them)\n",
    );
    let out = cli(&["plan", "p.yaml", "--only", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n  + product 2001  acme-ts-001\n"), "{}", out.stdout);

    // After a run: a known item with nothing to do is no error, an unknown one still is.
    assert_eq!(cli(&["run", "p.yaml"]).code, 0);
    let out = cli(&["plan", "p.yaml", "--only", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    cli(&["plan", "p.yaml", "--only", "product:9999999"]).fails(
        1,
        "error: product 9999999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );

    // A product deleted from the source can still be planned alone: its deletion.
    add_export(&t, "06-delete-product.json");
    let out = cli(&["plan", "p.yaml", "--only", "product:2013"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n  - product 2013"), "{}", out.stdout);
}

/// `text` without its ANSI colour codes (`ESC[…m`).
fn without_colours(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('\x1b') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('m').expect("a colour code ends with `m`");
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_plan_is_coloured_on_a_terminal() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args);
    let plain = cli(&["plan", "p.yaml"]).run();
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(!plain.stdout.contains('\x1b'), "{}", plain.stdout);

    // On a terminal, `--color auto` colours each change's marker, and changes nothing else.
    let shown = cli(&["plan", "p.yaml", "--color", "auto"]).run_in_terminal("");
    assert_eq!(shown.code, 0, "{}", shown.stdout);
    assert!(shown.stdout.contains("\n  \x1b[32m+\x1b[0m product 2001  acme-ts-001\n"), "{:?}", shown.stdout);
    similar_asserts::assert_eq!(without_colours(&shown.stdout), plain.stdout);
    // Updates and deletions too (and `auto` is the default).
    assert_eq!(cli(&["run", "p.yaml"]).run().code, 0);
    add_export(&t, "06-delete-product.json");
    add_export(&t, "08-vendor-change.json");
    let shown = cli(&["plan", "p.yaml"]).run_in_terminal("");
    assert!(shown.stdout.contains("\n  \x1b[31m-\x1b[0m product 2013  acme-ac-002 delete\n"), "{:?}", shown.stdout);
    assert!(shown.stdout.contains("\n  \x1b[33m~\x1b[0m product 2002  acme-ts-002 [vendor]\n"), "{:?}", shown.stdout);
    similar_asserts::assert_eq!(without_colours(&shown.stdout), cli(&["plan", "p.yaml"]).run().stdout);
    // An error on a terminal (stderr) is coloured as well.
    let shown = cli(&["plan", "nope.yaml"]).run_in_terminal("");
    assert_eq!(shown.code, 3, "{:?}", shown.stdout);
    assert!(
        shown.stdout.starts_with("nope.yaml: \x1b[1;31merror\x1b[0m: cannot read the pipeline"),
        "{:?}",
        shown.stdout
    );
}

#[test]
fn colour_codes_never_go_into_a_pipe_or_a_file() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args);
    let plain = cli(&["plan", "p.yaml"]).run().stdout;
    // stderr on the terminal, stdout into a pipe (`catsync plan | cat`): no colour in the pipe.
    let shown = cli(&["plan", "p.yaml", "--color", "auto"]).run_in_terminal("| cat");
    assert_eq!(shown.code, 0, "{}", shown.stdout);
    similar_asserts::assert_eq!(shown.stdout, plain);
    // Into a file: none in the file, nothing on the terminal.
    let shown = cli(&["plan", "p.yaml"]).run_in_terminal("> plan.txt");
    assert_eq!((shown.code, shown.stdout.as_str()), (0, ""));
    similar_asserts::assert_eq!(std::fs::read_to_string(t.path().join("plan.txt")).unwrap(), plain);
    // Errors into a file, the output on the terminal: none in the file either.
    let shown = cli(&["plan", "nope.yaml"]).run_in_terminal("2> errors.txt");
    assert_eq!((shown.code, shown.stdout.as_str()), (3, ""));
    let errors = std::fs::read_to_string(t.path().join("errors.txt")).unwrap();
    assert!(errors.starts_with("nope.yaml: error: cannot read the pipeline"), "{errors:?}");
    // `--color always` means it, pipe or not.
    let shown = cli(&["plan", "p.yaml", "--color", "always"]).run_in_terminal("| cat");
    assert!(shown.stdout.contains("\n  \x1b[32m+\x1b[0m product 2001  acme-ts-001\n"), "{:?}", shown.stdout);
    // (`catsync plan | head -1`, a pipe closed early: a_plan_piped_into_head_ends_quietly.)
}

#[test]
fn no_colour_on_a_terminal_when_asked() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args);
    let plain = cli(&["plan", "p.yaml"]).run().stdout;
    let shown = cli(&["plan", "p.yaml", "--color", "never"]).run_in_terminal("");
    assert_eq!(shown.code, 0, "{}", shown.stdout);
    similar_asserts::assert_eq!(shown.stdout, plain);
    let shown = cli(&["plan", "nope.yaml", "--color", "never"]).run_in_terminal("");
    assert!(shown.stdout.starts_with("nope.yaml: error: cannot read the pipeline"), "{:?}", shown.stdout);
    // `NO_COLOR` set to anything turns `auto` off; set to nothing it does not (no-color.org).
    let shown = cli(&["plan", "p.yaml"]).env("NO_COLOR", "1").run_in_terminal("");
    similar_asserts::assert_eq!(shown.stdout, plain);
    let shown = cli(&["plan", "p.yaml"]).env("NO_COLOR", "").run_in_terminal("");
    assert!(shown.stdout.contains("\n  \x1b[32m+\x1b[0m product 2001  acme-ts-001\n"), "{:?}", shown.stdout);
}

/// The demo pipeline over the ACME fixtures into the built-in store `sandbox://demo` (kept in
/// `.catsync/sandbox/demo.json`), its audit trail in `out/`; `exports/` starts with the full export.
fn built_in_store_project() -> Test {
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).expect("the demo pipeline");
    let pipeline = demo
        .replace(r#"files: ["../fixtures/saleslayer/acme/00-full.json"]"#, r#"files: ["exports/*.json"]"#)
        .replace("path: ../.catsync/demo-audit.jsonl", "path: out/audit.jsonl");
    let t = Test::new().file("p.yaml", &pipeline);
    add_export(&t, "00-full.json");
    t
}

/// A `catsync sandbox --port 0 ARGS…` process in `dir`, serving once it printed its address.
struct SandboxProcess {
    child: std::process::Child,
}

impl SandboxProcess {
    fn start(dir: &std::path::Path, args: &[&str]) -> (SandboxProcess, Vec<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_catsync"))
            .args(["sandbox", "--port", "0"])
            .args(args)
            .current_dir(dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start catsync sandbox");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        // The address, the endpoint, and for a browse the read-only line.
        for _ in 0..if args.contains(&"--read-only") { 3 } else { 2 } {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("a line");
            assert!(!line.is_empty(), "the sandbox ended early: {lines:?}");
            lines.push(line.trim_end().to_string());
        }
        assert!(lines[0].starts_with("sandbox listening on http://127.0.0.1:"), "{lines:?}");
        // Keep draining so the sandbox never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        (SandboxProcess { child }, lines)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: the sandbox saves (unless read-only) and exits 0.
    fn terminate(mut self) {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().expect("wait for the sandbox");
        assert!(status.success(), "{status}");
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files in `dir`, sorted.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_built_in_store_has_one_writer_at_a_time() {
    let t = built_in_store_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    std::fs::create_dir_all(t.path().join(".catsync/sandbox")).unwrap();
    let (writer, _) = SandboxProcess::start(t.path(), &["--data", ".catsync/sandbox/demo.json"]);

    // A run whose built-in store another process writes is stopped before it sends anything,
    // naming that process and what to do.
    let out = cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 4, "in use by another process, like a run in progress: {}\n{}", out.stdout, out.stderr);
    let expected = format!(
        "error: cannot start the embedded sandbox `demo`: sandbox data `.catsync/sandbox/demo.json` is in use by process {} (`",
        writer.pid()
    );
    assert!(out.stderr.starts_with(&expected), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "`), and only one process may write it at a time; wait for that process to finish or stop it, \
             or browse it meanwhile with `catsync sandbox --data .catsync/sandbox/demo.json --read-only`. \
             Nothing was lost: the run is stopped with its queue (32 changes) and no item was charged; `catsync run` resumes it\n"
        ),
        "{}",
        out.stderr
    );
    // So is a second `catsync sandbox` on the same file.
    let out = cli(&["sandbox", "--port", "0", "--data", ".catsync/sandbox/demo.json"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "error: sandbox data `.catsync/sandbox/demo.json` is in use by process {} (`",
            writer.pid()
        )),
        "{}",
        out.stderr
    );

    // Once the writer is gone, the run goes through, and says how to look without writing.
    writer.terminate();
    let out = cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "(kept in .catsync/sandbox/demo.json; browse it with `catsync sandbox --data .catsync/sandbox/demo.json --read-only`)"
        ),
        "{}",
        out.stdout
    );
    // Saved after every batch, through temp files of its own: none is left behind.
    assert_eq!(files_in(&t.path().join(".catsync/sandbox")), ["demo.json", "demo.json.lock"]);
}

#[test]
fn browsing_the_built_in_store_read_only_while_a_run_writes_keeps_the_runs_data() {
    let t = built_in_store_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    let data = t.path().join(".catsync/sandbox/demo.json");
    assert_eq!(cli(&["run", "p.yaml"]).code, 0);

    // The hint the run printed: a browse that takes no lock and never saves.
    let (browser, lines) = SandboxProcess::start(t.path(), &["--data", ".catsync/sandbox/demo.json", "--read-only"]);
    assert_eq!(lines[2], "read-only: `.catsync/sandbox/demo.json` is never saved (changes made here are lost on exit)");

    // A run meanwhile writes a new product to the store.
    add_export(&t, "09-new-product.json");
    let out = cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let written = std::fs::read(&data).expect("the store file");
    let store = catsync::sandbox::Store::load(&data).expect("a store");
    assert!(store.product_by_handle("acme-tr-004").is_some(), "the run wrote the new product");

    // The browse ends (on SIGTERM it used to save its stale copy over the run's writes).
    browser.terminate();
    assert!(std::fs::read(&data).expect("the store file") == written, "the read-only browse wrote the store file");
    let store = catsync::sandbox::Store::load(&data).expect("a store");
    assert!(store.product_by_handle("acme-tr-004").is_some());
    assert_eq!(files_in(&t.path().join(".catsync/sandbox")), ["demo.json", "demo.json.lock"]);

    // A read-only browse needs a file to browse, and `--read-only` needs `--data`.
    cli(&["sandbox", "--port", "0", "--data", "missing.json", "--read-only"])
        .fails(1, "error: `missing.json` does not exist: a read-only sandbox browses an existing data file\n");
    let out = cli(&["sandbox", "--port", "0", "--read-only"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--data <FILE>"), "{}", out.stderr);
}

#[test]
fn saves_of_the_store_never_collide_and_leave_no_temp_files() {
    use catsync::sandbox::{Sandbox, SandboxConfig, SandboxError, Store};
    use std::os::unix::fs::MetadataExt as _;

    // Many saves of the same file at once (a run's save and the periodic saver did this with one
    // shared temp file: `cannot replace …: No such file or directory`).
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.json");
    let store = Store::new("shop");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..25 {
                    store.save(&path).expect("a save");
                }
            });
        }
    });
    assert_eq!(Store::load(&path).expect("a store"), store);
    assert_eq!(files_in(dir.path()), ["store.json"]);

    // One sandbox writes a data file; another one in the same process is refused too.
    let config = SandboxConfig { data: Some(path.clone()), ..SandboxConfig::default() };
    let first = Sandbox::start(config.clone()).expect("the first writer");
    let second = Sandbox::start(config.clone()).err().expect("a second writer is refused");
    assert!(matches!(second, SandboxError::InUse(_)), "{second:?}");
    assert!(second.to_string().contains("is already open for writing in this process"), "{second}");
    // A read-only one is not.
    let browse = Sandbox::start(SandboxConfig { read_only: true, ..config.clone() }).expect("a browse");

    // A save writes only a store that changed since the last one.
    first.with_store(|s| s.enable_locales(&["es".to_string()]));
    first.save().expect("a save");
    let inode = std::fs::metadata(&path).expect("the file").ino();
    first.save().expect("a save");
    assert_eq!(std::fs::metadata(&path).expect("the file").ino(), inode, "an unchanged store was rewritten");
    first.with_store(|s| s.enable_locales(&["fr".to_string()]));
    first.save().expect("a save");
    assert_ne!(std::fs::metadata(&path).expect("the file").ino(), inode, "a changed store was not saved");

    // The browse never saves; the writer's lock goes with it.
    browse.with_store(|s| s.enable_locales(&["de".to_string()]));
    browse.save().expect("nothing to save");
    browse.shutdown();
    assert!(!Store::load(&path).expect("a store").locales.iter().any(|l| l.locale == "de"));
    first.shutdown();
    Sandbox::start(config).expect("the file is free again").shutdown();
    assert_eq!(files_in(dir.path()), ["store.json", "store.json.lock"]);
}

/// A Sales Layer export whose `product_tags` is a list field.
const LIST_TAGS_EXPORT: &str = r#"{"version":"1.18","time":1,"action":"refresh",
 "schema":{"default_language":"en","languages":["en"]},
 "data_schema_info":{"products":{"product_tags":{"type":"list"}}},
 "data_schema":{"catalogue":["STATUS","ID","ID_PARENT","section_name"],
                "products":["STATUS","ID","ID_catalogue","product_name","product_reference","product_tags"],
                "product_formats":["STATUS","ID","ID_products","format_sku"]},
 "data":{"catalogue":[],
         "products":[["M","10",[],"Shirt","SH-1",["first-test"]],
                     ["M","11",[],"Shorts","SH-2",["first-test","summer sale"]]],
         "product_formats":[]}}"#;

#[test]
fn a_list_field_in_a_template_gives_the_list_never_its_repr() {
    // The starter's own mapping, `tags: "{{ product_tags }}"`, over a list field; the same list
    // inside text, and through a filter that keeps it a list.
    let t = Test::new().file("export.json", LIST_TAGS_EXPORT).file(
        "p.yaml",
        r#"version: 1
name: tags
parameters:
  export_status: all
  deletions: disabled
stages:
  pim:
    type: saleslayer
    files: [export.json]
  docs:
    type: map
    inputs: [pim]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
      tags: "{{ product_tags }}"
      descriptionHtml: "<p>Tagged {{ product_tags }}</p>"
      seo:
        title: "{{ product_tags | reject('eq', 'first-test') | list }}"
    variants:
      sku: "{{ format_sku }}"
      options: { Size: "{{ format_sku }}" }
  out:
    type: jsonl_export
    inputs: [docs]
    path: out.jsonl
"#,
    );
    let out = Test::at(t.path()).args(["plan", "p.yaml", "--out", "plan.json"]).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("plan.json")).expect("the plan file"))
            .expect("JSON");
    let text = plan.to_string();
    assert!(!text.contains("['") && !text.contains("[\\\""), "a list rendered as its repr: {text}");
    let documents: Vec<&serde_json::Value> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c.get("document").unwrap_or_else(|| panic!("a document in {c}")))
        .collect();
    let shown: Vec<(String, serde_json::Value, String, String)> = documents
        .iter()
        .map(|d| {
            (
                d["handle"].as_str().unwrap_or_default().to_string(),
                d["tags"].clone(),
                d["descriptionHtml"].as_str().unwrap_or_default().to_string(),
                d["seo"]["title"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                "sh-1".to_string(),
                serde_json::json!(["first-test"]),
                "<p>Tagged first-test</p>".to_string(),
                String::new()
            ),
            (
                "sh-2".to_string(),
                serde_json::json!(["first-test", "summer sale"]),
                "<p>Tagged first-test, summer sale</p>".to_string(),
                "summer sale".to_string()
            ),
        ]
    );
}

#[test]
fn validate_rejects_unknown_template_filters_tests_and_functions() {
    // minijinja compiles these; a run used to fail every item that rendered them.
    Test::edited(&[
        ("{{ product_reference | slug }}", "{{ product_reference | sluggify }}"),
        (
            r#"title: "{{ product_name }}""#,
            r#"title: "{{ product_name if product_name is definedd else tt('product_name', 'es') }}""#,
        ),
        (r#"price: "{{ format_price | money }}""#, "price: |\n        {{ format_price\n           | trim | mony }}"),
    ])
    .args(["validate", "p.yaml"])
    .run()
    .fails(
        3,
        r#"
            p.yaml:14:14: error: stage `docs`: template uses unknown test `definedd`
               |
            14 |       title: "{{ product_name if product_name is definedd else tt('product_name', 'es') }}"
               |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = hint: did you mean `defined`?
            p.yaml:14:14: error: stage `docs`: template uses unknown function `tt`
               |
            14 |       title: "{{ product_name if product_name is definedd else tt('product_name', 'es') }}"
               |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = hint: did you mean `t`?
            p.yaml:15:15: error: stage `docs`: template uses unknown filter `sluggify`
               |
            15 |       handle: "{{ product_reference | sluggify }}"
               |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = hint: did you mean `slug`?
            p.yaml:20:9: error: stage `docs`: template uses unknown filter `mony` (template line 2)
               |
            20 |         {{ format_price
               |         ^^^^^^^^^^^^^^^
               = hint: did you mean `money`?
            1 of 1 file invalid: 4 errors, 0 warnings
            "#,
    );

    // A `filter` stage's expression too.
    let with_filter =
        crate::support::GOOD_PIPELINE.replacen("    inputs: [pim]\n", "    inputs: [keep]\n", 1).replacen(
            "  docs:\n",
            "  keep:\n    type: filter\n    inputs: [pim]\n    where: \"product_name | lenght > 3\"\n  docs:\n",
            1,
        );
    Test::pipeline(&with_filter).args(["validate", "p.yaml"]).run().fails(
        3,
        r#"
            p.yaml:13:12: error: stage `keep`: expression uses unknown filter `lenght`
               |
            13 |     where: "product_name | lenght > 3"
               |            ^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = hint: did you mean `length`?
            1 of 1 file invalid: 1 error, 0 warnings
            "#,
    );
}

#[test]
fn shell_completions_complete_commands_and_options() {
    let out = Test::new().args(["completions", "bash"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("_catsync() {\n"), "{}", out.stdout);
    // Loaded into bash, `catsync pl<TAB>` completes to `plan`, and `catsync status --f<TAB>` to
    // `--format`.
    let t = Test::new().file("catsync.bash", &out.stdout);
    let complete = |words: &str| {
        let script = format!(
            "source catsync.bash; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _catsync catsync \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash").args(["-c", &script]).current_dir(t.path()).output().expect("bash");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("catsync pl"), "plan");
    assert_eq!(complete("catsync status --f"), "--format");
    assert_eq!(complete("catsync completions z"), "zsh");

    for (shell, start) in [("zsh", "#compdef catsync\n"), ("fish", "# Print an optspec")] {
        let out = Test::new().args(["completions", shell]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.starts_with(start), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains("refresh"), "{shell}");
    }
    let out = Test::new().args(["completions", "tcsh"]).run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("[possible values: bash, elvish, fish, powershell, zsh]"), "{}", out.stderr);
}

#[test]
fn the_man_page_documents_every_command_with_examples() {
    let out = Test::new().args(["man"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = &out.stdout;
    assert!(page.contains("\n.TH catsync 1 "), "{page}");
    assert!(page.contains("\n.SH NAME\ncatsync \\- Catalog sync as code"), "{page}");
    // Every command: listed, and a section of its own with its options.
    for command in
        ["validate", "plan", "run", "refresh", "apply", "status", "explain", "drift", "sandbox", "completions", "man"]
    {
        assert!(page.contains(&format!("\n.TP\n\\fBcatsync {command}\\fR\n")), "{command} is not listed");
        assert!(page.contains(&format!("\n.SH \"{}\"\n", command.to_uppercase())), "{command} has no section");
    }
    assert!(!page.contains("catsync\\-plan(1)"), "no page of its own");
    assert!(page.contains("\\fB\\-\\-detailed\\-exitcode\\fR"), "the plan's options");
    assert!(
        page.contains(
            ".SS EXAMPLES\n.nf\n  # sync the demo into the built\\-in store\n  catsync run pipelines/demo.yaml\n"
        ),
        "{page}"
    );
    // It renders, where `man` is installed.
    if let Ok(mut man) = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        use std::io::Write as _;
        man.stdin.take().expect("stdin").write_all(page.as_bytes()).expect("write the page");
        let rendered = man.wait_with_output().expect("man");
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(text.contains("catsync run pipelines/demo.yaml"), "{text}");
    }
}

#[test]
fn run_plan_and_refresh_help_show_examples() {
    for (command, example) in [
        ("run", "\nExamples:\n  # sync the demo into the built-in store\n  catsync run pipelines/demo.yaml\n"),
        ("plan", "\nExamples:\n  # what the next run would send, and why\n  catsync plan pipelines/shop.yaml\n"),
        ("refresh", "\nExamples:\n  # what a refresh would send\n  catsync plan pipelines/shop.yaml --refresh\n"),
    ] {
        let out = Test::new().args([command, "--help"]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains(example), "{command}:\n{}", out.stdout);
    }
}

#[test]
fn env_and_state_are_options_only_of_the_commands_they_mean_something_to() {
    let help = |command: &[&str]| {
        let out = Test::new().args(command).args(["--help"]).run();
        assert_eq!(out.code, 0, "{command:?}: {}", out.stderr);
        (out.stdout.contains("--env <NAME>"), out.stdout.contains("--state <DIR>"))
    };
    for command in ["plan", "run", "refresh", "apply", "status", "log", "deactivate", "activate", "explain", "drift"] {
        assert_eq!(help(&[command]), (true, true), "{command} takes --env and --state");
    }
    assert_eq!(help(&["validate"]), (true, false));
    for command in [&["init"][..], &["state"], &["state", "export"], &["state", "import"]] {
        assert_eq!(help(command), (false, true), "{command:?} takes --state only");
    }
    for command in ["completions", "man", "gen", "graph", "sandbox", "test"] {
        assert_eq!(help(&[command]), (false, false), "{command} takes neither");
    }
    // Neither is accepted where it means nothing, before the command or after it.
    for args in
        [&["--state", "s", "completions", "bash"][..], &["completions", "bash", "--env", "e"], &["--env", "e", "gen"]]
    {
        let out = Test::new().args(args).run();
        assert_eq!(out.code, 2, "{args:?}: {}", out.stdout);
        assert!(out.stderr.starts_with("error: unexpected argument '--"), "{args:?}: {}", out.stderr);
    }
    // Before the command, where they mean something, they still work (as scripts write them).
    let t = acme_project();
    let out = Test::at(t.path()).args(["--state", "elsewhere", "-q", "run", "p.yaml"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(t.path().join("elsewhere/db").is_dir());
    assert!(!t.path().join(".catsync").exists());
    let out = Test::at(t.path()).args(["--state=elsewhere", "plan", "p.yaml"]).run();
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
}

#[test]
fn status_as_json() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    cli(&["status", "p.yaml", "--format", "json"]).succeeds(
        r#"
        {
          "active": true,
          "deactivated_since": null,
          "environment": "default",
          "failed_items": [],
          "last_runs": [],
          "pipeline": "demo",
          "running": null,
          "sources": [
            {
              "cursor": null,
              "stage": "pim"
            }
          ],
          "unfinished_run": null
        }
        "#,
    );
    assert_eq!(cli(&["run", "p.yaml"]).code, 0);
    assert_eq!(cli(&["deactivate", "p.yaml"]).code, 0);
    let out = cli(&["status", "p.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(status["active"], false);
    assert!(status["deactivated_since"].is_string(), "{status}");
    assert_eq!(status["sources"], serde_json::json!([{"stage": "pim", "cursor": 1717000000}]));
    let runs = status["last_runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "COMPLETED");
    assert_eq!(runs[0]["errors"], 0);
    assert_eq!(runs[0]["counts"]["audit"]["create"], 16);
    assert_eq!(status["failed_items"], serde_json::json!([]));
}

#[test]
fn status_counts_many_failed_items_by_message() {
    // Every product's vendor is longer than Shopify's 255 characters: the store refuses each.
    let vendor = vec!["{{ product_name }}"; 20].join(" ");
    let t = synthetic_project(
        &format!("      vendor: \"{vendor}\"\n"),
        "  store:\n    type: shopify\n    inputs: [docs]\n    url: sandbox://big\n",
    );
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    let out = cli(&["run", "p.yaml", "--limit", "25"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);

    // 25 failures of one cause: the cause once, with how many and a few of them.
    let out = cli(&["status", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let failed = &out.stdout[out.stdout.find("  failed items").expect("failed items")..];
    similar_asserts::assert_eq!(
        failed,
        "  failed items: 25, by message (`catsync status p.yaml --all` lists each item):\n    \
         25 items (parked): `input`: Vendor is too long (maximum is 255 characters) (INVALID_PRODUCT)\n      \
         e.g. store product:100000002, store product:100000003, store product:100000004, …\n"
    );
    // `--all`: each of them.
    let out = cli(&["status", "p.yaml", "--all"]);
    let lines: Vec<&str> = out.stdout.lines().skip_while(|l| *l != "  failed items:").skip(1).collect();
    assert_eq!(lines.len(), 25, "{}", out.stdout);
    assert!(lines
        .iter()
        .all(|l| l.starts_with("    parked   store product:1000000") && l.ends_with("(INVALID_PRODUCT)")));
    let json: serde_json::Value =
        serde_json::from_str(&cli(&["status", "p.yaml", "--format", "json"]).stdout).expect("JSON");
    assert_eq!(json["failed_items"].as_array().expect("items").len(), 25);
}

#[test]
fn init_keeps_the_state_out_of_git() {
    // No `.gitignore` yet: one is written.
    let t = Test::new();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    let out = cli(&["init"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out
        .stdout
        .contains("\nadded `.catsync/` to .gitignore (the state and the built-in store's data are not for git)\n"));
    let gitignore = || std::fs::read_to_string(t.path().join(".gitignore")).expect("a .gitignore");
    assert_eq!(gitignore(), "# catsync: the state and the built-in store's data\n.catsync/\n");
    // Already there: left alone.
    let out = cli(&["init", "--out", "pipelines/second.yaml"]);
    assert!(!out.stdout.contains(".gitignore"), "{}", out.stdout);
    assert_eq!(gitignore(), "# catsync: the state and the built-in store's data\n.catsync/\n");

    // An existing `.gitignore` is appended to, without a final newline or not.
    let t = Test::new().file(".gitignore", "target");
    assert_eq!(Test::at(t.path()).args(["init"]).run().code, 0);
    assert_eq!(
        std::fs::read_to_string(t.path().join(".gitignore")).unwrap(),
        "target\n# catsync: the state and the built-in store's data\n.catsync/\n"
    );
    // One that covers it already (`/.catsync`), or a state outside the project: unchanged.
    let t = Test::new().file(".gitignore", "/.catsync\n");
    assert_eq!(Test::at(t.path()).args(["init"]).run().code, 0);
    assert_eq!(std::fs::read_to_string(t.path().join(".gitignore")).unwrap(), "/.catsync\n");
    let t = Test::new();
    let state = t.path().join("state").display().to_string();
    assert_eq!(Test::at(t.path()).args(["--state", &state, "init"]).run().code, 0);
    assert!(!t.path().join(".gitignore").exists());
    // `--state` inside the project: that directory.
    let t = Test::new();
    assert_eq!(Test::at(t.path()).args(["--state", "var/catsync", "init"]).run().code, 0);
    assert!(std::fs::read_to_string(t.path().join(".gitignore")).unwrap().ends_with("\nvar/catsync/\n"));
}
