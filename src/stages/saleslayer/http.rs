//! Reading the Sales Layer Connector API over HTTP: the signed call (`key256`), `ver=1.18`,
//! pagination through `next_page`, the `last_update` cursor and the flags the official plugins set;
//! a page that fails on the way (no connection, HTTP 429 or 5xx) is asked for again.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::page::{self, Layouts, Page};
use super::{Export, SourceError};
use crate::config::secret::Secret;
use crate::retry::{retry, GaveUp, Policy, Verdict, Wait};

/// API version whose pagination catsync reads.
pub const API_VERSION: &str = "1.18";

/// Pages of one export are requested at most this many times (a `next_page` loop is an error).
const MAX_PAGES: usize = 100_000;

/// The call's signature: `sha256_hex(code + secret + time + unique)`.
pub fn key256(code: &str, secret: &str, time: u64, unique: &str) -> String {
    let mut h = Sha256::new();
    h.update(code.as_bytes());
    h.update(secret.as_bytes());
    h.update(time.to_string().as_bytes());
    h.update(unique.as_bytes());
    hex::encode(h.finalize())
}

/// Everything a call needs.
pub struct ApiCall<'a> {
    pub url: &'a str,
    pub code: &'a str,
    pub secret: &'a Secret,
    pub pagination: u32,
    pub last_update: Option<i64>,
}

impl ApiCall<'_> {
    /// The query of the first page (the secret itself is never sent, only the signature).
    pub fn query(&self, time: u64, unique: &str) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("code", self.code.to_string()),
            ("time", time.to_string()),
            ("unique", unique.to_string()),
            ("key256", key256(self.code, self.secret.expose(), time, unique)),
            ("ver", API_VERSION.to_string()),
            ("pagination", self.pagination.to_string()),
            ("group_category_id", "1".to_string()),
            ("same_parent_variants", "1".to_string()),
            ("parents_category_tree", "1".to_string()),
        ];
        if let Some(t) = self.last_update {
            q.push(("last_update", t.to_string()));
        }
        q
    }

    /// Reads every page of the export newer than `last_update`.
    pub fn read(&self) -> Result<Vec<Export>, SourceError> {
        let fut = self.read_async();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| handle.block_on(fut)),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SourceError::Api(format!("cannot start the HTTP client: {e}")))?
                .block_on(fut),
        }
    }

    async fn read_async(&self) -> Result<Vec<Export>, SourceError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("catsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Api(format!("cannot start the HTTP client: {e}")))?;
        let mut layouts = Layouts::new();
        let mut pages: Vec<Page> = Vec::new();
        let mut next: Option<String> = None;
        for n in 1..=MAX_PAGES {
            let shown = format!("{} (page {n})", self.url);
            let body = self.fetch(&client, next.as_deref(), &shown).await?;
            let page = page::decode(&body, &mut layouts).map_err(|error| match error {
                page::PageError::Api { code, message } => SourceError::Api(format!(
                    "the Sales Layer API at {} answered error {code}: {message}; check the connector's `code` and `secret`",
                    self.url
                )),
                error => SourceError::Page { path: shown, error },
            })?;
            if let Some(first) = pages.first() {
                if page.time != first.time {
                    return Err(SourceError::Api(format!(
                        "page {n} of the export has time {}, page 1 had {}; the export changed while it was read — run again",
                        page.time, first.time
                    )));
                }
            }
            next = page.next_page.clone();
            pages.push(page);
            if next.is_none() {
                break;
            }
        }
        let Some(first) = pages.first() else { return Ok(Vec::new()) };
        // Never a part of an export as if it were all of it (a refresh would remove the rest).
        if next.is_some() {
            return Err(SourceError::Api(format!(
                "the export at {} has more than {MAX_PAGES} pages; nothing was read from it. Ask for larger pages (`pagination`) in the connector",
                self.url
            )));
        }
        if let Some(declared) = super::declared_pages(&pages).filter(|&n| (pages.len() as u64) < n) {
            return Err(SourceError::Api(format!(
                "the export at {} declares {declared} pages but its last page came after {}; nothing was read from it — run again",
                self.url,
                pages.len()
            )));
        }
        if self.last_update.is_some_and(|c| first.time <= c) {
            return Ok(Vec::new());
        }
        let (time, action) = (first.time, first.action);
        let origin = vec![format!("{} ({} page{})", self.url, pages.len(), if pages.len() == 1 { "" } else { "s" })];
        super::page::merge_across_pages(&mut pages)
            .map_err(|(p, error)| SourceError::Page { path: format!("{} (page {})", self.url, p + 1), error })?;
        Ok(vec![Export { time, action, pages, origin }])
    }
}

impl ApiCall<'_> {
    /// One page's body: the first page signed afresh for each attempt, a next page by the URL the
    /// previous one gave. Connection failures, HTTP 429 and 5xx are tried again
    /// ([`Policy::REQUEST`], honouring `Retry-After`); other HTTP errors are not.
    async fn fetch(&self, client: &reqwest::Client, next: Option<&str>, shown: &str) -> Result<Vec<u8>, SourceError> {
        let attempt = |_| async {
            let request = match next {
                Some(url) => client.get(url),
                None => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    client.get(self.url).query(&self.query(now, &unique_token()))
                }
            };
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Verdict::Retry(
                        format!("cannot reach the Sales Layer API at {shown}: {}", error_chain(&e)),
                        Wait::Backoff,
                    )
                }
            };
            let status = response.status();
            let wait = Wait::asked_by(response.headers());
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => return Verdict::Retry(format!("reading {shown}: {}", error_chain(&e)), Wait::Backoff),
            };
            let failed = format!("the Sales Layer API answered HTTP {status} for {shown}");
            match status.as_u16() {
                200..=299 => Verdict::Done(body.to_vec()),
                429 | 500..=599 => Verdict::Retry(failed, wait),
                _ => Verdict::Fail(SourceError::Api(format!("{failed}; check `url` and try again later"))),
            }
        };
        let before_retry = |attempt, why: &String, wait: Duration| {
            tracing::warn!("{why}; retry {attempt}/{} in {:.1} s", Policy::REQUEST.attempts - 1, wait.as_secs_f64());
        };
        retry(Policy::REQUEST, attempt, before_retry).await.map_err(|gave_up| match gave_up {
            GaveUp::Failed(e) => e,
            GaveUp::Exhausted { attempts, last } => {
                SourceError::Api(format!("{last} (after {attempts} attempts); check `url` and try again later"))
            }
        })
    }
}

/// A per-call random token for the signature.
fn unique_token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let digest = blake3::hash(format!("{nanos}:{}", std::process::id()).as_bytes());
    digest.to_hex()[..16].to_string()
}

/// reqwest's error with its causes (the useful part is usually the innermost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key256_is_sha256_of_code_secret_time_unique() {
        // sha256("CN1s3cr3t1717000000abc") computed independently.
        assert_eq!(
            key256("CN1", "s3cr3t", 1717000000, "abc"),
            "2b40337fd21a7e2e7eeb7c37b64a5ee8cdd5ec98c1fea46a3db76b7ccfb3e2b7"
        );
    }
}
