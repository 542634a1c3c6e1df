//! The HTTP side of `catsync serve` (axum over a hyper accept loop): the status page `/`, the
//! JSON API (`GET /api/pipelines`, `GET /api/pipelines/{id}`, and the token-guarded
//! `POST /api/pipelines/{id}/deactivate|activate|refresh` and `POST /api/plan`), `/metrics`,
//! `/healthz` and `/readyz`. Requests are bounded: headers must arrive within 10 s, a body may
//! not exceed 64 KiB (a pipeline file sent to `/api/plan`, 1 MiB), and an answer that takes more
//! than 30 s is a 503. Views read control files and plans read the state, so they are made on the
//! blocking pool, never on the runtime's workers; one plan is made at a time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::Service;

use super::controller::{ActionError, Controller};
use crate::config::secret::Secret;

/// Largest request body accepted (the API's requests have none)…
const MAX_BODY_BYTES: u64 = 64 * 1024;
/// …but for a pipeline file sent to `POST /api/plan`.
const MAX_PIPELINE_BYTES: u64 = 1024 * 1024;
/// How long a client may take to send a request's headers; hyper also closes a kept-alive
/// connection that waits this long for its next request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
struct App {
    controller: Arc<Controller>,
    token: Option<Secret>,
    /// One plan at a time: each evaluates a catalog.
    plans: Arc<tokio::sync::Semaphore>,
}

type Shared = Arc<App>;

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/pipelines", get(api_pipelines))
        .route("/api/pipelines/{id}", get(api_pipeline))
        .route("/api/pipelines/{id}/{action}", post(api_action))
        .route("/api/plan", post(api_plan))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found: see `/`, `/api/pipelines`, `/metrics`") })
        .with_state(app)
}

/// Serves until `shutdown` resolves.
pub(super) async fn serve(
    listener: TcpListener,
    controller: Arc<Controller>,
    token: Option<Secret>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = router(Arc::new(App { controller, token, plans: Arc::new(tokio::sync::Semaphore::new(1)) }));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let mut app = app.clone();
                        async move {
                            let limit = if req.uri().path() == "/api/plan" { MAX_PIPELINE_BYTES } else { MAX_BODY_BYTES };
                            let too_big = req
                                .headers()
                                .get(header::CONTENT_LENGTH)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                                .is_some_and(|n| n > limit);
                            if too_big {
                                return Ok::<_, Infallible>(error(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large"));
                            }
                            let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit as usize)));
                            match tokio::time::timeout(REQUEST_TIMEOUT, app.call(req)).await {
                                Ok(response) => Ok(response.unwrap_or_else(|never| match never {})),
                                Err(_) => Ok(error(StatusCode::SERVICE_UNAVAILABLE, "the answer took too long")),
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// Views made on the blocking pool (they read control files).
async fn views(app: &Shared) -> Value {
    let c = app.controller.clone();
    tokio::task::spawn_blocking(move || super::view::all(&c)).await.unwrap_or_else(|e| json!({"error": e.to_string()}))
}

async fn index(State(app): State<Shared>) -> Response {
    let all = views(&app).await;
    let nonce = nonce();
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        super::page::render(&all, &nonce),
    )
        .into_response();
    let policy = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn api_pipelines(State(app): State<Shared>) -> Response {
    json_response(StatusCode::OK, &views(&app).await)
}

async fn api_pipeline(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let c = app.controller.clone();
    let found = tokio::task::spawn_blocking(move || c.find(&id).map(|e| super::view::pipeline(&c, &e))).await;
    match found {
        Ok(Ok(view)) => json_response(StatusCode::OK, &view),
        Ok(Err(e)) => action_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn api_action(
    State(app): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !matches!(action.as_str(), "deactivate" | "activate" | "refresh") {
        return error(StatusCode::NOT_FOUND, "unknown action: `deactivate`, `activate` or `refresh`");
    }
    if let Some(refused) = refused(&app, &headers) {
        return refused;
    }
    let c = app.controller.clone();
    let done = tokio::task::spawn_blocking(move || match action.as_str() {
        "deactivate" => c.deactivate(&id),
        "activate" => c.activate(&id),
        _ => c.refresh(&id),
    })
    .await;
    match done {
        Ok(Ok(message)) => json_response(StatusCode::OK, &json!({"message": message})),
        Ok(Err(e)) => action_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The refusal of a request that needs the token and does not carry it, if it does not.
fn refused(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "no token is configured: start `catsync serve` with `--token-file PATH` or `--token '${CATSYNC_TOKEN}'` to allow these requests",
        ));
    };
    if authorized(headers, token) {
        return None;
    }
    let mut response = error(StatusCode::UNAUTHORIZED, "a valid `Authorization: Bearer TOKEN` header is required");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// `POST /api/plan`: the plan of the pipeline file in the body against the controller's state
/// (see `serve::plan`), as JSON, markdown or text (`?format=`, else the `Accept` header); the
/// header `Catsync-Plan-Changes` says whether it has changes.
async fn api_plan(State(app): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refused(&app, &headers) {
        return refused;
    }
    let query = match super::plan::PlanQuery::parse(uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let format = query.format.unwrap_or_else(|| {
        super::plan::format_accepted(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or(""))
    });
    let Ok(permit) = app.plans.clone().acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the controller is stopping");
    };
    let c = app.controller.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = permit;
        super::plan::plan(&c, &query, format, &body)
    })
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("the plan failed: {e}")),
    };
    match answer {
        super::plan::Answer::Plan { body, format, changes, warnings } => {
            let kind = match format {
                crate::plan::format::PlanFormat::Json => "application/json; charset=utf-8",
                crate::plan::format::PlanFormat::Markdown => "text/markdown; charset=utf-8",
                crate::plan::format::PlanFormat::Text => "text/plain; charset=utf-8",
            };
            let mut response =
                ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-store")], body).into_response();
            let headers = response.headers_mut();
            headers.insert("catsync-plan-changes", HeaderValue::from_static(if changes { "true" } else { "false" }));
            if !warnings.is_empty() {
                // Warnings are a few lines; a header too large for a proxy is left out.
                let json = super::plan::ascii_json(&warnings);
                if let Ok(v) =
                    HeaderValue::from_str(&json).map_err(drop).and_then(|v| (json.len() <= 8192).then_some(v).ok_or(()))
                {
                    headers.insert("catsync-warnings", v);
                }
            }
            response
        }
        other => {
            let status = match &other {
                super::plan::Answer::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                super::plan::Answer::Failed { status, .. } => {
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
                super::plan::Answer::Plan { .. } => StatusCode::OK,
            };
            json_response(status, &other.error_body())
        }
    }
}

async fn metrics(State(app): State<Shared>) -> Response {
    let all = views(&app).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], super::metrics::render(&all)).into_response()
}

/// Liveness: the process answers.
async fn healthz() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok\n").into_response()
}

/// Readiness: every pipeline file was looked at once, and the controller is not stopping.
async fn readyz(State(app): State<Shared>) -> Response {
    if app.controller.ready() {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not ready\n")
            .into_response()
    }
}

/// Whether the request carries the token: their blake3 hashes are compared (`blake3::Hash`'s
/// equality is constant-time, and hashes reveal nothing of the token's length).
fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = given.strip_prefix("Bearer ") else { return false };
    blake3::hash(given.trim().as_bytes()) == blake3::hash(token.expose().as_bytes())
}

fn action_error(e: ActionError) -> Response {
    match e {
        ActionError::NotFound(m) => error(StatusCode::NOT_FOUND, &m),
        ActionError::NotLoaded(m) => error(StatusCode::CONFLICT, &m),
        ActionError::Failed(m) => error(StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let text = serde_json::to_string_pretty(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], text)
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"error": message}))
}

/// A fresh value for the page's `Content-Security-Policy` nonce.
fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seed = format!("{}:{}:{}", std::process::id(), now.as_nanos(), COUNTER.fetch_add(1, Ordering::Relaxed));
    blake3::hash(seed.as_bytes()).to_hex()[..32].to_string()
}
