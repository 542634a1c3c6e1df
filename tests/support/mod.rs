//! A builder for CLI tests: a temp dir with files, a cleared environment, the `catsync` binary,
//! and whole-output assertions with readable diffs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Root of the repository (for fixtures and shipped pipelines).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Removes the common indentation and the first newline, so expectations can be indented in code.
pub fn unindent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() })
        .collect::<Vec<_>>()
        .join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    // A trailing line of only spaces (the closing quote's indentation) is not content.
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// A minimal Sales Layer export page, so field names are known to the checks.
pub const MINI_EXPORT: &str = r#"{"version":"1.18","time":1,"action":"refresh",
 "schema":{"default_language":"en","languages":["en","es"]},
 "data_schema_info":{"products":{"product_name_en":{"type":"string","basename":"product_name","language_code":"en"},
                                 "product_name_es":{"type":"string","basename":"product_name","language_code":"es"}}},
 "data_schema":{"catalogue":["STATUS","ID","ID_PARENT","section_name"],
                "products":["STATUS","ID","ID_catalogue","product_name_en","product_name_es","product_reference","product_status",{"product_image":["STATUS","ID","ORG"]}],
                "product_formats":["STATUS","ID","ID_products","format_sku","format_price","color"]},
 "data":{"catalogue":[],"products":[],"product_formats":[]}}"#;

/// A valid pipeline over [`MINI_EXPORT`]; bad cases are small edits of it.
pub const GOOD_PIPELINE: &str = r#"version: 1
name: shop
parameters:
  export_status: visible
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
      status: { from: product_status, map: { V: ACTIVE, D: DRAFT, I: ARCHIVED } }
    variants:
      sku: "{{ format_sku }}"
      price: "{{ format_price | money }}"
      options: { Color: "{{ color }}" }
  store:
    type: shopify
    inputs: [docs]
    url: sandbox://shop
"#;

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Where to run, when not in `dir`.
    cwd: Option<PathBuf>,
}

/// What a finished command printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Self {
        Test { dir: tempfile::tempdir().expect("temp dir"), args: Vec::new(), env: Vec::new(), cwd: None }
    }

    /// A test dir holding `export.json` (the mini export) and `p.yaml` with `pipeline`.
    pub fn pipeline(pipeline: &str) -> Self {
        Test::new().file("export.json", MINI_EXPORT).file("p.yaml", pipeline)
    }

    /// [`Test::pipeline`] with [`GOOD_PIPELINE`] edited: each `(from, to)` replaces one exact
    /// piece of text, which must occur (so a changed base pipeline cannot silently void a case).
    pub fn edited(edits: &[(&str, &str)]) -> Self {
        let mut text = GOOD_PIPELINE.to_string();
        for (from, to) in edits {
            assert!(text.contains(from), "the base pipeline has no `{from}`");
            text = text.replacen(from, to, 1);
        }
        Test::pipeline(&text)
    }

    /// A command run in an existing directory (the temp dir stays owned by its creator).
    pub fn at(dir: &Path) -> Self {
        let dir = tempfile::TempDir::with_prefix_in("unused-", dir).expect("temp dir");
        let cwd = dir.path().parent().expect("parent").to_path_buf();
        Test { dir, args: Vec::new(), env: Vec::new(), cwd: Some(cwd) }
    }

    pub fn file(self, rel: &str, contents: &str) -> Self {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(path, contents).expect("write file");
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_catsync"))
            .args(&self.args)
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run catsync");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the command under a pseudo-terminal (util-linux `script`), stdin, stdout and stderr
    /// all on it, with `TERM=xterm` and an 80x24 window whatever the machine's terminal is, and the
    /// environment otherwise cleared like [`Test::run`] (so no `NO_COLOR` unless [`Test::env`]
    /// sets it). `shell` follows the command in the shell line (`"| cat"`, `"> plan.txt"`), for
    /// stdout sent elsewhere than the terminal. The output's `stdout` is what the terminal showed
    /// (stdout and stderr together, its `\r\n` read as `\n`); `code` is the shell line's status.
    pub fn run_in_terminal(&self, shell: &str) -> Output {
        let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
        let mut line = format!("stty cols 80 rows 24 && {}", quote(env!("CARGO_BIN_EXE_catsync")));
        for a in &self.args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line.push(' ');
        line.push_str(shell);
        let out = Command::new("script")
            .args(["--quiet", "--return", "--command", &line, "/dev/null"])
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TERM", "xterm")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run `script` (util-linux, Debian's bsdutils) to give catsync a terminal");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    /// Asserts the exit code and the whole stderr (unindented); stdout must be empty.
    #[track_caller]
    pub fn fails(&self, code: i32, stderr: &str) -> &Self {
        similar_asserts::assert_eq!(self.stderr, unindent(stderr), "stderr");
        assert_eq!(self.code, code, "exit code; stdout:\n{}", self.stdout);
        self
    }

    #[track_caller]
    pub fn succeeds_with_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts exit code 0 and the whole stdout (unindented).
    #[track_caller]
    pub fn succeeds(&self, stdout: &str) -> &Self {
        assert_eq!(self.code, 0, "exit code; stderr:\n{}", self.stderr);
        similar_asserts::assert_eq!(self.stdout, unindent(stdout), "stdout");
        self
    }
}

/// A sandbox store on an ephemeral loopback port accepting `token`, with Spanish enabled (the
/// fixtures are in English and Spanish).
pub fn sandbox_store(
    token: &str,
    faults: catsync::sandbox::FaultSpec,
    bucket: f64,
    restore: f64,
) -> catsync::sandbox::Sandbox {
    sandbox_with(
        token,
        catsync::sandbox::SandboxConfig {
            faults,
            bucket_size: bucket,
            restore_rate: restore,
            ..catsync::sandbox::SandboxConfig::default()
        },
    )
}

/// A sandbox store started with `config`, accepting `token`, with Spanish enabled.
pub fn sandbox_with(token: &str, config: catsync::sandbox::SandboxConfig) -> catsync::sandbox::Sandbox {
    let s =
        catsync::sandbox::Sandbox::start(catsync::sandbox::SandboxConfig { tokens: vec![token.to_string()], ..config })
            .expect("the sandbox starts");
    s.with_store(|store| {
        store.locales.push(catsync::sandbox::store::ShopLocale {
            locale: "es".into(),
            name: "Spanish".into(),
            primary: false,
            published: true,
        })
    });
    s
}
