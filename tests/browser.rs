//! The status page of `catsync serve` in a real headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs), driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages on file descriptors 3 and 4, so no port, no WebSocket and no network): the page
//! as the browser renders it shows both pipelines, their state and their last run, inside the
//! screenshot taken of it; typing the token and clicking a pipeline's Deactivate button pauses
//! it, and the page says so after its reload. Without a Chromium the test says it is skipped —
//! unless `CATSYNC_REQUIRE_BROWSER=1` (set by `.ci/run`), when that is a failure.
//! `CATSYNC_SCREENSHOT=docs/serve.png` keeps a screenshot of the whole page at the end (the
//! README's).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use catsync::sandbox::FaultSpec;
use serde_json::{json, Value};

use crate::serve::{params, Project, API_TOKEN};
use crate::sync::{products, sandbox};

/// Where the browser draws: the screenshot's size.
const WIDTH: u64 = 1200;
const HEIGHT: u64 = 900;

/// The Chromium to use: `CATSYNC_CHROMIUM`, else the first of Debian's and Google's names on
/// `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os("CATSYNC_CHROMIUM") {
        return Some(PathBuf::from(exe));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|exe| exe.is_file())
}

/// A headless Chromium with one page, driven over the DevTools protocol.
struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    /// Messages read while waiting for another (events, mostly).
    pending: VecDeque<Value>,
    next_id: u64,
    session: String,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

/// How long one DevTools command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Browser {
    fn launch(exe: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromium.log");
        // Two pipes: commands to the browser's fd 3, messages from its fd 4.
        let (mut to, mut from) = ([0; 2], [0; 2]);
        assert_eq!(unsafe { libc::pipe2(to.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        assert_eq!(unsafe { libc::pipe2(from.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (child_reads, child_writes) = (to[0], from[1]);
        let mut command = Command::new(exe);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-color-profile=srgb",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        // In the child: the pipe ends onto 3 and 4 (through copies above them, so that dup2 never
        // keeps a close-on-exec descriptor in place). Only async-signal-safe calls.
        unsafe {
            command.pre_exec(move || {
                let reads = libc::fcntl(child_reads, libc::F_DUPFD_CLOEXEC, 10);
                let writes = libc::fcntl(child_writes, libc::F_DUPFD_CLOEXEC, 10);
                if reads < 0 || writes < 0 || libc::dup2(reads, 3) < 0 || libc::dup2(writes, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let (commands, replies) = unsafe {
            libc::close(child_reads);
            libc::close(child_writes);
            (File::from_raw_fd(to[1]), File::from_raw_fd(from[0]))
        };
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut replies = std::io::BufReader::new(replies);
            let mut message = Vec::new();
            loop {
                message.clear();
                match std::io::BufRead::read_until(&mut replies, 0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = message.strip_suffix(&[0]).unwrap_or(&message);
                        if let Ok(value) = serde_json::from_slice::<Value>(text) {
                            if tx.send(value).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            commands,
            messages,
            pending: VecDeque::new(),
            next_id: 0,
            session: String::new(),
            log,
            _profile: profile,
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"})).unwrap();
        let attached = browser
            .send(None, "Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}))
            .unwrap();
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({})).unwrap();
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
            )
            .unwrap();
        browser
    }

    /// What Chromium printed, for failure messages.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends a command (to the page's session, or the browser's) and waits for its answer.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).map_err(|e| format!("{method}: the browser is gone: {e}\n{}", self.log()))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if m["id"] == id => {
                    return match m.get("error") {
                        Some(e) => Err(format!("{method}: {e}")),
                        None => Ok(m["result"].clone()),
                    };
                }
                Ok(other) => self.pending.push_back(other),
                Err(RecvTimeoutError::Timeout) => return Err(format!("{method}: no answer in {CALL_TIMEOUT:?}")),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("{method}: the browser ended\n{}", self.log()))
                }
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Waits for the page's event `method`, dropping the ones already seen.
    fn wait_event(&mut self, method: &str) {
        self.pending.retain(|m| m["method"] != method);
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if m["method"] == method => return,
                Ok(other) => self.pending.push_back(other),
                Err(e) => panic!("waiting for {method}: {e}\n{}", self.log()),
            }
        }
    }

    fn navigate(&mut self, url: &str) {
        self.pending.clear();
        self.call("Page.navigate", json!({"url": url})).unwrap();
        self.wait_event("Page.loadEventFired");
    }

    /// The value of a JavaScript expression in the page (an error while the page reloads).
    fn evaluate(&mut self, expression: &str) -> Result<Value, String> {
        let answer = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}))?;
        match answer.get("exceptionDetails") {
            Some(e) => Err(format!("{expression}: {e}")),
            None => Ok(answer["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` until it gives something other than null or false.
    fn wait_for(&mut self, what: &str, secs: u64, expression: &str) -> Value {
        let start = Instant::now();
        loop {
            match self.evaluate(expression) {
                Ok(Value::Null | Value::Bool(false)) | Err(_) => {}
                Ok(found) => return found,
            }
            assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A left click in the middle of the element `selector` (as a person would: the mouse
    /// moves there, presses and releases).
    fn click(&mut self, selector: &str) {
        let expression = format!(
            "(() => {{ const r = document.querySelector({}).getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
            serde_json::to_string(selector).unwrap()
        );
        let at = self.wait_for(selector, 30, &expression);
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .unwrap();
        }
    }

    /// Types `text` where the focus is.
    fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).unwrap();
    }

    /// A PNG of the viewport.
    fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).unwrap();
        base64(shot["data"].as_str().unwrap())
    }

    /// A PNG of the whole page, below the viewport too.
    fn screenshot_page(&mut self) -> Vec<u8> {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).unwrap();
        let height = metrics["cssContentSize"]["height"].as_f64().unwrap().ceil();
        let clip = json!({"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1});
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png", "clip": clip, "captureBeyondViewport": true}))
            .unwrap();
        base64(shot["data"].as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.send(None, "Browser.close", json!({}));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes standard base64 (what `Page.captureScreenshot` answers).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The width and height of a PNG.
fn png_size(png: &[u8]) -> (u64, u64) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap()) as u64;
    (be(&png[16..20]), be(&png[20..24]))
}

/// What the page shows of each pipeline, as the browser lays it out: its id, title line (name,
/// environment, state), last run's status, and where its title is drawn.
const SECTIONS: &str = "[...document.querySelectorAll('section.pipeline')].map(s => {
  const h = s.querySelector('h2'); const r = h.getBoundingClientRect(); const style = getComputedStyle(h);
  return { id: s.id, title: h.innerText, status: (s.querySelector('td.status') || {}).innerText || null,
           top: r.top, bottom: r.bottom, left: r.left, right: r.right,
           shown: style.visibility === 'visible' && style.display !== 'none' && r.width > 0 && r.height > 0 };
})";

#[test]
fn the_page_in_headless_chromium_shows_the_pipelines_and_its_deactivate_button_pauses_one() {
    let Some(exe) = chromium() else {
        let why = "no Chromium found (`chromium` on PATH or CATSYNC_CHROMIUM; `apt-get install chromium`)";
        assert!(std::env::var("CATSYNC_REQUIRE_BROWSER").as_deref() != Ok("1"), "CATSYNC_REQUIRE_BROWSER=1, but {why}");
        eprintln!("SKIPPED: the page in a browser: {why}");
        return;
    };
    let (a, b) = (sandbox(FaultSpec::default(), 2000.0, 100.0), sandbox(FaultSpec::default(), 2000.0, 100.0));
    let p = Project::new();
    p.pipeline("acme", &a.url(), &params("1s", 5));
    p.pipeline("beta", &b.url(), &params("1s", 5));
    p.source("acme", "00-full.json");
    p.source("beta", "00-full.json");
    let mut serve = p.serve(&["--token-file", "token"]);
    serve.wait_for_run("acme", 1, "COMPLETED");
    serve.wait_for_run("beta", 1, "COMPLETED");
    assert_eq!(products(&a).len(), 10);

    let mut browser = Browser::launch(&exe);
    browser.navigate(&format!("{}/", serve.base));
    // Both pipelines, active, with their last run COMPLETED, drawn inside the screenshot.
    let sections = browser.evaluate(SECTIONS).unwrap();
    let png = browser.screenshot();
    assert_eq!(png_size(&png), (WIDTH, HEIGHT));
    assert!(png.len() > 15_000, "a page drawn, not a blank one: {} bytes", png.len());
    let sections = sections.as_array().unwrap();
    let ids: Vec<&str> = sections.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme@default", "beta@default"]);
    for (s, name) in sections.iter().zip(["acme", "beta"]) {
        assert_eq!(s["title"], format!("{name} default active"), "{s}");
        assert_eq!(s["status"], "COMPLETED", "{s}");
        assert_eq!(s["shown"], true, "{s}");
        let inside = s["top"].as_f64().unwrap() >= 0.0
            && s["bottom"].as_f64().unwrap() <= HEIGHT as f64
            && s["left"].as_f64().unwrap() >= 0.0
            && s["right"].as_f64().unwrap() <= WIDTH as f64;
        assert!(inside, "the title of `{name}` is inside the screenshot: {s}");
    }

    // Each pipeline's stage graph is drawn: three boxes, two arrows.
    let drawn = browser
        .evaluate("[...document.querySelectorAll('svg.dag')].map(g => [g.getBBox().width > 300, g.querySelectorAll('rect').length, g.querySelectorAll('path[marker-end]').length])")
        .unwrap();
    assert_eq!(drawn, json!([[true, 3, 2], [true, 3, 2]]));

    // The token typed into its field, then a click on acme's Deactivate button: the page
    // reports the answer, reloads, and shows acme paused; beta goes on.
    browser.click("#token");
    browser.type_text(API_TOKEN);
    browser.click(r#"button[data-action="deactivate"][data-id="acme@default"]"#);
    let message =
        browser.wait_for("the answer on the page", 30, "document.getElementById('message').textContent || null");
    assert!(message.as_str().unwrap().contains("acme"), "{message}");
    let paused = browser.wait_for(
        "acme paused on the page",
        30,
        r#"(() => { const b = document.querySelector('[id="acme@default"] .badge'); return b && b.innerText.startsWith('paused') && b.innerText; })()"#,
    );
    assert!(paused.as_str().unwrap().starts_with("paused (deactivated since "), "{paused}");
    let sections = browser.evaluate(SECTIONS).unwrap();
    assert_eq!(sections[1]["title"], "beta default active", "{sections}");
    assert_eq!(serve.api("acme")["active"], false);
    assert_eq!(serve.api("beta")["active"], true);

    let png = browser.screenshot();
    assert_eq!(png_size(&png), (WIDTH, HEIGHT));
    if let Some(path) = std::env::var_os("CATSYNC_SCREENSHOT") {
        let page = browser.screenshot_page();
        assert_eq!(png_size(&page).0, WIDTH);
        std::fs::write(crate::support::repo().join(path), page).unwrap();
    }
}
