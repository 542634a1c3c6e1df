//! The client side of `POST /api/plan`: `catsync plan --remote URL` sends a pipeline file to a
//! controller and gets the plan back, made against the controller's state — the plan a pull
//! request's version of the file would have once merged, Atlantis-style. What the controller
//! answers maps onto what `catsync plan` would do there: the plan in the format asked for, the
//! validation errors (exit 3), or the error with its exit status.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::commands::plan::Selection;
use crate::config::secret::Secret;
use crate::error::{Error, Exit};
use crate::plan::format::PlanFormat;

/// How long the controller may take to answer (it gives up on a plan after 30 s itself).
const TIMEOUT: Duration = Duration::from_secs(60);

/// What to plan.
pub struct PlanRequest<'a> {
    /// The file as the user names it; the controller names it so in its answer, and places
    /// it in its pipelines' directory by its file name.
    pub file: &'a Path,
    pub text: Vec<u8>,
    pub environment: Option<&'a str>,
    pub format: PlanFormat,
    pub refresh: bool,
    pub full: bool,
    pub selection: &'a Selection,
}

/// A plan made by a controller.
#[derive(Debug)]
pub struct RemotePlan {
    /// The plan, rendered as asked.
    pub body: String,
    /// Whether it has changes (`--detailed-exitcode`).
    pub changes: bool,
    /// Configuration warnings, as `catsync plan` prints them.
    pub warnings: String,
}

/// Asks the controller at `url` (`http://host:8080`, or a prefix a proxy serves it under) for
/// the plan of `request`, with the bearer `token`.
pub fn plan(url: &str, token: Option<&Secret>, request: &PlanRequest) -> Result<RemotePlan, Error> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::failed(format!(
            "`--remote {url}`: give the controller's address, e.g. `http://127.0.0.1:8080`"
        )));
    }
    let endpoint = format!("{}/api/plan", url.trim_end_matches('/'));
    let mut query: Vec<(&str, String)> = vec![
        ("file", request.file.display().to_string()),
        (
            "format",
            match request.format {
                PlanFormat::Json => "json",
                PlanFormat::Markdown => "markdown",
                PlanFormat::Text => "text",
            }
            .to_string(),
        ),
    ];
    if let Some(env) = request.environment {
        query.push(("env", env.to_string()));
    }
    if request.refresh {
        query.push(("refresh", "true".to_string()));
    }
    if request.full {
        query.push(("full", "true".to_string()));
    }
    if let Some(limit) = request.selection.limit {
        query.push(("limit", limit.to_string()));
    }
    for (kind, id) in &request.selection.only {
        query.push(("only", format!("{}:{id}", kind.singular())));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the HTTP client: {e}")))?;
    let (status, headers, body) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::failed(format!("cannot start the HTTP client: {e}")))?;
        let mut req = client
            .post(&endpoint)
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(request.text.clone());
        if let Some(token) = token {
            req = req.bearer_auth(token.expose());
        }
        let unreachable = |e: reqwest::Error| Error::failed(format!("cannot reach the controller at {url}: {e}"));
        let response = req.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(unreachable)?;
        Ok::<_, Error>((status, headers, body))
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    if status == 200 {
        let warnings =
            header("catsync-warnings").and_then(|w| serde_json::from_str::<String>(&w).ok()).unwrap_or_default();
        return Ok(RemotePlan { body, changes: header("catsync-plan-changes").as_deref() == Some("true"), warnings });
    }
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let message = answer["error"].as_str().map(str::to_string).unwrap_or_else(|| body.trim().to_string());
    if status == 422 {
        if let Some(rendered) = answer["rendered"].as_str() {
            return Err(Error::InvalidConfig { rendered: rendered.to_string() });
        }
    }
    let exit = match answer["exit"].as_i64() {
        Some(4) => Exit::InProgress,
        _ => Exit::Error,
    };
    let message = match status {
        401 | 403 => format!("the controller at {url} refused the plan: {message}"),
        404 => format!("{url} has no `/api/plan` (HTTP 404): is it a `catsync serve` of this version?"),
        _ => message,
    };
    Err(if exit == Exit::Error { Error::failed(message) } else { Error::refused(exit, message) })
}
