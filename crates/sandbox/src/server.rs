//! The HTTP side: the accept loop (hyper, so injected faults can close a connection without an
//! answer), the routes (`/admin/api/{version}/graphql.json`, the staged-upload endpoint, bulk
//! result files), token checks, and the background tasks (async product operations, bulk
//! runs, saving the store).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::Service;

use super::bulk::{self, BulkRun, MAX_FILE_BYTES};
use super::engine::{lock, Shared};
use super::execute::Followup;
use super::faults::Fault;
use super::products;
use super::response::Out;
use super::BulkHold;

/// Shopify's answer to a missing or unknown access token.
const INVALID_TOKEN: &str = "[API] Invalid API key or access token (unrecognized login or wrong password)";
/// Largest GraphQL request body accepted.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Marks a request the throttle fault picked.
#[derive(Clone, Copy)]
struct ForceThrottle;

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct InjectedReset;

impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset injected by the sandbox's fault settings")
    }
}

impl std::error::Error for InjectedReset {}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/admin/api/{version}/graphql.json", post(graphql).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)))
        .route("/staged-uploads", post(upload_form).layer(DefaultBodyLimit::disable()))
        .route("/staged-uploads/{*key}", put(upload_put).layer(DefaultBodyLimit::disable()))
        .route("/bulk-operation-outputs/{file}", get(bulk_output))
        .fallback(|| async { json(StatusCode::NOT_FOUND, &Out::obj([("errors", Out::str("Not Found"))])) })
        .with_state(shared)
}

/// Serves until `shutdown` fires; saves the store (with `--data`) on the way out.
pub async fn run(listener: TcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let app = router(shared.clone());
    let saver = tokio::spawn(save_periodically(shared.clone()));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let mut app = app.clone();
                        let shared = shared.clone();
                        async move {
                            let mut req = req.map(Body::new);
                            if req.method() == Method::POST && req.uri().path().ends_with("/graphql.json") {
                                let (fault, slow) = lock(&shared.faults).draw();
                                if let Some(delay) = slow {
                                    tokio::time::sleep(delay).await;
                                }
                                match fault {
                                    Some(Fault::Reset) => return Err(InjectedReset),
                                    Some(Fault::Lost) => {
                                        let _applied = app.call(req).await;
                                        return Err(InjectedReset);
                                    }
                                    Some(Fault::Status(code)) => {
                                        let retry_after = lock(&shared.faults).spec().retry_after;
                                        return Ok(server_error(code, retry_after));
                                    }
                                    Some(Fault::Throttle) => {
                                        req.extensions_mut().insert(ForceThrottle);
                                    }
                                    None => {}
                                }
                            }
                            let response: Result<Response, Infallible> = app.call(req).await;
                            Ok(response.unwrap_or_else(|never| match never {}))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    saver.abort();
    save(&shared);
}

async fn save_periodically(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let worker = shared.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || worker.save()).await {
            tracing::error!("{e}");
        }
    }
}

/// The last save, once the server stopped; then the data file is free for another writer.
fn save(shared: &Shared) {
    if let Err(e) = shared.save() {
        tracing::error!("{e}");
    }
    shared.release_data();
}

fn json(status: StatusCode, body: &Out) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_json_string()).into_response()
}

fn server_error(code: u16, retry_after: u64) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = status.canonical_reason().unwrap_or("Internal Server Error");
    let mut response = json(status, &Out::obj([("errors", Out::str(text))]));
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let latest = shared.config.api_versions.last().cloned().unwrap_or_default();
    json(
        StatusCode::OK,
        &Out::obj([
            ("sandbox", Out::str("catsync Shopify Admin API sandbox")),
            ("graphql", Out::str(format!("{}/admin/api/{latest}/graphql.json", shared.env.base_url))),
            ("apiVersions", Out::List(shared.config.api_versions.iter().map(|v| Out::str(v.as_str())).collect())),
        ]),
    )
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let token = headers.get("x-shopify-access-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    !token.is_empty() && (shared.config.tokens.is_empty() || shared.config.tokens.iter().any(|t| t == token))
}

async fn graphql(State(shared): State<Arc<Shared>>, Path(version): Path<String>, request: Request) -> Response {
    let force_throttle = request.extensions().get::<ForceThrottle>().is_some();
    let headers = request.headers().clone();
    if !shared.config.api_versions.contains(&version) {
        return json(StatusCode::NOT_FOUND, &Out::obj([("errors", Out::str("Not Found"))]));
    }
    if !authorized(&shared, &headers) {
        return json(StatusCode::UNAUTHORIZED, &Out::obj([("errors", Out::str(INVALID_TOKEN))]));
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => return json(StatusCode::PAYLOAD_TOO_LARGE, &Out::obj([("errors", Out::str("Payload Too Large"))])),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
    let worker = shared.clone();
    let served = version.clone();
    let answer =
        tokio::task::spawn_blocking(move || worker.graphql(&served, &body, content_type.as_deref(), force_throttle))
            .await;
    let answer = match answer {
        Ok(a) => a,
        Err(_) => return server_error(500, 1),
    };
    for followup in answer.followups {
        spawn_followup(shared.clone(), followup);
    }
    let mut response = json(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK), &answer.body);
    if let Ok(v) = HeaderValue::from_str(&version) {
        response.headers_mut().insert("x-shopify-api-version", v);
    }
    response
}

fn spawn_followup(shared: Arc<Shared>, followup: Followup) {
    match followup {
        Followup::ProductOperation { operation, identifier, input } => {
            tokio::spawn(async move {
                tokio::time::sleep(shared.config.operation_delay).await;
                let job_error = lock(&shared.faults).job_error();
                let mut store = lock(&shared.store);
                products::complete_operation(&mut store, operation, identifier.as_ref(), &input, job_error);
                shared.changed();
            });
        }
        Followup::BulkOperation { operation } => {
            tokio::spawn(run_bulk(shared, operation));
        }
    }
}

async fn run_bulk(shared: Arc<Shared>, operation: u64) {
    tokio::time::sleep(shared.config.bulk_start_delay).await;
    wait_while_held(&shared, operation, BulkHold::Created).await;
    let job_error = lock(&shared.faults).job_error();
    let Some(mut run) = BulkRun::start(&mut lock(&shared.store), operation) else {
        shared.changed();
        return;
    };
    shared.changed();
    wait_while_held(&shared, operation, BulkHold::Running).await;
    if job_error {
        run.fail(&mut lock(&shared.store));
        shared.changed();
        return;
    }
    let batch = shared.config.bulk_batch.max(1);
    loop {
        // A step walks up to `batch` lines (a bulk query: every node it reaches) under the store's
        // lock: blocking work, kept off the runtime's workers as `graphql` is.
        let worker = shared.clone();
        let Ok((stepped, done)) = tokio::task::spawn_blocking(move || {
            let done = run.step(&mut lock(&worker.store), &worker.env, batch);
            (run, done)
        })
        .await
        else {
            return;
        };
        run = stepped;
        shared.changed();
        if done {
            break;
        }
        tokio::time::sleep(shared.config.bulk_step_delay).await;
    }
}

/// Waits while bulk operations are held at `stage` (and the operation is not being canceled).
async fn wait_while_held(shared: &Shared, operation: u64, stage: BulkHold) {
    while shared.hold_bulk.load(Ordering::Relaxed) == stage as u8 {
        let canceling = lock(&shared.store).bulk_operations.get(&operation).is_none_or(|o| o.status == "CANCELING");
        if canceling {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// GCS-style form upload: fields (`key`, …) then the file.
async fn upload_form(State(shared): State<Arc<Shared>>, mut form: Multipart) -> Response {
    let mut key = None;
    let mut received = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return xml_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string()),
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            match read_limited(field).await {
                Ok(r) => received = Some(r),
                Err(e) => return xml_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e),
            }
        } else if name == "key" {
            key = field.text().await.ok();
        }
    }
    let (Some(key), Some((size, bytes))) = (key, received) else {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "the form needs a `key` field and a `file` field",
        );
    };
    if !bulk::receive_upload(&mut lock(&shared.store), &key, size, bytes) {
        return xml_error(StatusCode::FORBIDDEN, "AccessDenied", "no staged upload target was created for this key");
    }
    let base = &shared.env.base_url;
    let body = format!(
        "<?xml version='1.0' encoding='UTF-8'?><PostResponse><Location>{base}/staged-uploads/{key}</Location><Bucket>sandbox</Bucket><Key>{key}</Key><ETag>\"{size}\"</ETag></PostResponse>"
    );
    (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn read_limited(mut field: axum::extract::multipart::Field<'_>) -> Result<(u64, Option<Vec<u8>>), String> {
    let mut size = 0u64;
    let mut bytes = Some(Vec::new());
    while let Some(chunk) = field.chunk().await.map_err(|e| e.to_string())? {
        keep(&mut size, &mut bytes, &chunk);
    }
    Ok((size, bytes))
}

/// Counts a chunk and keeps the bytes while the file stays within the bulk limit.
fn keep(size: &mut u64, bytes: &mut Option<Vec<u8>>, chunk: &Bytes) {
    *size += chunk.len() as u64;
    if *size > MAX_FILE_BYTES {
        *bytes = None;
    } else if let Some(b) = bytes.as_mut() {
        b.extend_from_slice(chunk);
    }
}

/// Signed-URL style upload: the body is the file.
async fn upload_put(State(shared): State<Arc<Shared>>, Path(key): Path<String>, body: Body) -> Response {
    use http_body_util::BodyExt;
    let mut size = 0u64;
    let mut bytes = Some(Vec::new());
    let mut body = body;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(chunk) = f.data_ref() {
                    keep(&mut size, &mut bytes, chunk);
                }
            }
            Err(e) => return xml_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string()),
        }
    }
    if !bulk::receive_upload(&mut lock(&shared.store), &key, size, bytes) {
        return xml_error(StatusCode::FORBIDDEN, "AccessDenied", "no staged upload target was created for this key");
    }
    StatusCode::OK.into_response()
}

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        format!("<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn bulk_output(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let id = file.strip_suffix(".jsonl").and_then(|s| s.parse::<u64>().ok());
    let output = id.and_then(|id| lock(&shared.store).bulk_outputs.get(&id).cloned());
    match output {
        Some(text) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/jsonl")], text).into_response(),
        None => xml_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist."),
    }
}
