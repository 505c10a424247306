//! Router assembly and the server's life: start, serve, shut down.

mod guard;
pub mod tls;

pub use guard::AllowedHosts;

use crate::clock::Clock;
use crate::config::{Settings, redact_database_url};
use crate::state::{AppState, ServerLimits};
use crate::store::DynStore;
use crate::{engine, keys, store, web};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::response::Response;
use http_body::Body as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// The address of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The client's address: the connection's, or, behind a trusted proxy, the last address in
/// `X-Forwarded-For` (the one that proxy added; earlier ones are the client's own claims).
pub fn client_address(trusted_proxy: bool, parts: &axum::http::request::Parts) -> String {
    if trusted_proxy
        && let Some(forwarded) = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .next_back()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
    {
        return forwarded.to_string();
    }
    parts
        .extensions
        .get::<PeerAddr>()
        .map_or_else(|| "-".to_string(), |p| p.0.ip().to_string())
}

/// Whether the client reached the server over HTTPS: served with TLS here, or, behind a
/// trusted proxy, as its `X-Forwarded-Proto` says.
pub fn client_uses_https(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    state.tls.is_some()
        || (state.trusted_proxy
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface as a pure function of state, so tests can drive it in-process.
pub fn router(state: AppState) -> Router {
    let body_timeout = state.limits.body_timeout;
    let hosts = state.allowed_hosts.clone();
    let tls = state.tls.is_some();
    // The gate sits inside the routes, where it knows which route matched.
    let gated = web::routes().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        web::auth::gate,
    ));
    // Inside the router, where the matched route is known; outside the gate, so refusals
    // are counted too.
    let timed = gated.layer(axum::middleware::from_fn_with_state(
        state.metrics.clone(),
        web::metrics::record,
    ));
    let routes = with_layers(timed.with_state(state), body_timeout, hosts);
    if tls {
        let (name, value) = tls::HSTS;
        routes.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    } else {
        routes
    }
}

/// The layers every route gets: request ids, tracing, compression, a deadline on request
/// bodies, a 500 for a handler that panics, the host allow-list, the refusal of changes sent
/// from other sites, and the security headers. Public so a test can put them around its own
/// routes.
pub fn with_layers(
    routes: Router,
    body_timeout: Duration,
    allowed_hosts: Arc<AllowedHosts>,
) -> Router {
    let mut routes = routes
        // Innermost, so the 500 still gets a request id, Vary and compression, and the panic
        // is logged inside the request's span (method and route).
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(axum::middleware::map_request(move |req: Request<Body>| {
            std::future::ready(with_body_deadline(req, body_timeout))
        }))
        .layer(axum::middleware::map_request(|req: Request<Body>| {
            std::future::ready(guard::refuse_cross_site(req))
        }))
        // Before anything else reads the request, and inside the trace, so a refusal is
        // logged with its request id.
        .layer(axum::middleware::map_request(move |req: Request<Body>| {
            std::future::ready(guard::check_host(&allowed_hosts, req))
        }))
        // One URL serves a page or an htmx fragment, so caches must key on HX-Request.
        .layer(SetResponseHeaderLayer::appending(
            header::VARY,
            HeaderValue::from_static("HX-Request"),
        ))
        .layer(CompressionLayer::new());
    // Outside every layer that can answer, so no answer goes without them.
    for (name, value) in guard::SECURITY_HEADERS {
        routes = routes.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    routes
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(|req: Request<Body>| {
            std::future::ready(without_unusable_request_id(req))
        }))
}

/// A client's own `x-request-id` is kept, so a caller can find its request in the log, if it
/// is a plain token of at most 64 characters: it goes into every log line of the request and
/// becomes the SCF API's RequestId. Anything else is dropped and the server makes a fresh id.
fn without_unusable_request_id(mut req: Request<Body>) -> Request<Body> {
    let plain = |id: &[u8]| {
        (1..=64).contains(&id.len())
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    let usable = req
        .headers()
        .get_all(REQUEST_ID)
        .iter()
        .all(|id| plain(id.as_bytes()));
    if !usable {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// The span of one request. The path only: the query of a GET API call carries its
/// parameters and signature, which have no place in a log.
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(req.uri().path(), MatchedPath::as_str);
    tracing::info_span!("request", method = %req.method(), route = %route, path = %req.uri().path(), request_id = %id)
}

fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = crate::error::panic_message(panic.as_ref());
    tracing::error!(panic = %message, "request handler panicked; answered 500");
    crate::error::internal_error_response()
}

/// The body must arrive whole within `limit` of its head: a client trickling a body cannot
/// hold a connection and its buffer for long.
fn with_body_deadline(req: Request<Body>, limit: Duration) -> Request<Body> {
    if req.body().is_end_stream() {
        return req;
    }
    req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        })
    })
}

struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct BodyTimeout(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits.clone();
    let tls = state.tls.clone();
    serve_router(listener, router(state), &limits, tls, shutdown).await
}

/// The accept loop: HTTP/1.1 with a deadline on request heads, at most
/// `limits.max_connections` connections at once, and a graceful end.
///
/// A permit is taken before `accept`, so when every permit is out, new connections wait in
/// the kernel's listen backlog (and are refused by it once that is full) instead of being
/// accepted and then starved; they are served as soon as a connection closes.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    limits: &ServerLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(connection_cap(limits.max_connections)));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of descriptors or memory: back off rather than spin; a connection
                    // that died in the backlog is nothing to wait for.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Every request knows the address it came from: for the audit log and login limits.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        ));
        let Some(acceptor) = &tls else {
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%peer, error = %e, "connection closed with an error");
                }
                drop(permit);
            });
            continue;
        };
        let (acceptor, http, watcher) = (acceptor.clone(), http.clone(), graceful.watcher());
        // The handshake has the deadline of a request head: a client that connects and says
        // nothing holds its connection no longer than one that sends no request.
        let handshake = limits.header_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %e, "connection closed with an error");
                    }
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
            drop(permit);
        });
    }
    drop(listener);
    // A client that stops reading (a long export, say) must not hold the stop up for ever:
    // the engine and the store still have to be shut down cleanly after this.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} s after the stop are closed",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// Connections the metrics listener serves at once.
const METRICS_CONNECTIONS: usize = 16;

/// How long requests in flight may finish once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Headers in one request: browsers and SDKs send a dozen or two.
const MAX_HEADERS: usize = 100;
/// The read buffer, which bounds a request's head (its line, query string and headers).
const MAX_HEAD_BYTES: usize = 400 * 1024;

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Descriptors kept back from connections for the database, instances and their pipes.
const RESERVED_DESCRIPTORS: u64 = 256;

/// `wanted`, lowered to what the process's descriptor limit leaves for connections, so the
/// cap is reached before `accept` fails for want of descriptors. The soft limit is first
/// raised towards the hard one as far as `wanted` needs, as many systems start processes at
/// 1024.
// rlim_t is u64 on Linux but not on every platform.
#[allow(clippy::unnecessary_cast)]
fn connection_cap(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted.max(1);
    }
    let needed = (wanted as u64).saturating_add(RESERVED_DESCRIPTORS);
    if (limit.rlim_cur as u64) < needed {
        let raised = libc::rlimit {
            rlim_cur: needed.min(limit.rlim_max as u64) as libc::rlim_t,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given; a soft limit up to the hard one
        // is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
        }
    }
    let descriptors = limit.rlim_cur as u64;
    let allowed = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    let cap = (wanted as u64).min(allowed).max(1) as usize;
    if cap < wanted {
        tracing::warn!(
            wanted,
            cap,
            descriptors,
            "the open-file limit lowers the connection cap; raise it (ulimit -n) to serve more"
        );
    }
    cap
}

/// Starts scf-console with the given settings and runs until Ctrl-C or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings.database_url()).await?;
    let interpreters =
        engine::interpreters::detect(&settings.python_command(), &settings.node_command()).await;
    let mut state = AppState::with_engine(
        store.clone(),
        Clock::System,
        settings.regions(),
        interpreters,
        settings.event_retention.0,
        settings.engine(),
    )
    .await?;
    let isolation = state.engine.isolation();
    if settings.require_isolation && !isolation.is_complete() {
        state.engine.shutdown().await;
        anyhow::bail!(
            "functions would not be isolated from each other, and SCF_REQUIRE_ISOLATION is set: {}",
            isolation.missing.join("; ")
        );
    }
    state.timezone = settings.timezone;
    state.limits = settings.server_limits();
    state.allow_unsigned_payload = settings.allow_unsigned_payload;
    state.allowed_hosts = Arc::new(settings.allowed_hosts());
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        state.tls = Some(tls::acceptor(cert, key)?);
    }
    state.trusted_proxy = settings.trusted_proxy;
    state.sessions.ttl = settings.session_ttl.0;
    crate::accounts::ensure_first_admin(
        &state.store,
        state.clock.now_millis(),
        settings.admin_password.as_deref(),
    )
    .await?;
    if let (Some(id), Some(key)) = (&settings.secret_id, &settings.secret_key) {
        keys::put_configured(&state, id, key).await?;
        tracing::info!(secret_id = %id, "API key from the configuration is ready");
    }
    // Bound and logged before the console's address, which is the line that says the server
    // is up; served once the state is complete (the System page names its address).
    let metrics_listener = match settings.metrics_listen {
        Some(at) => Some(bind_metrics(at).await?),
        None => None,
    };
    if let Some(listener) = &metrics_listener {
        state.metrics_at = Some(listener.local_addr()?);
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if state.tls.is_some() { "https" } else { "http" };
    tracing::info!(
        tls = state.tls.is_some(),
        "scf-console listening on {scheme}://{addr}"
    );
    if !addr.ip().is_loopback() && state.tls.is_none() {
        tracing::warn!(
            "listening on {addr} without TLS: requests and API keys cross the network in clear; serve HTTPS with --tls-cert and --tls-key, or put a TLS proxy in front"
        );
    }
    tracing::info!(allowed_hosts = %state.allowed_hosts, "answering requests for these host names");
    state
        .engine
        .listening_on(format!("{scheme}://{addr}"))
        .await;
    state.sweeper.set_interval(settings.sweep_interval.0);
    state
        .sweeper
        .set_audit_retention(settings.audit_retention.0);
    state.sweeper.start();
    let (engine, sweeper) = (state.engine.clone(), state.sweeper.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let metrics =
        metrics_listener.map(|listener| serve_metrics(listener, state.clone(), stop.clone()));
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopping.cancel();
    });
    serve(listener, state, stop.cancelled_owned()).await?;
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    sweeper.stop().await;
    engine.shutdown().await;
    store.close().await;
    tracing::info!("scf-console stopped");
    Ok(())
}

/// The metrics listener (see `--metrics-listen`).
async fn bind_metrics(at: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(at)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {at}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!("metrics on http://{addr}/metrics");
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the metrics listener {addr} answers anyone who reaches it, without a login: keep it on a private network"
        );
    }
    Ok(listener)
}

/// Serves the metrics listener until `stop`: plain HTTP, no login, nothing of the console.
fn serve_metrics(
    listener: TcpListener,
    state: AppState,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    // A scraper or two and the probes: a few connections, so the console's own cap on
    // descriptors still holds.
    let limits = ServerLimits {
        max_connections: METRICS_CONNECTIONS,
        ..state.limits.clone()
    };
    let app = web::metrics::listener_routes(state);
    tokio::spawn(async move {
        if let Err(e) = serve_router(listener, app, &limits, None, stop.cancelled_owned()).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    })
}

/// Opens the store at `url`. The log line and any error name the database with its password
/// redacted, as the store's own messages may quote the URL they were given.
pub async fn open_store(url: &str) -> anyhow::Result<DynStore> {
    let shown = redact_database_url(url);
    let store = store::open(url)
        .await
        .map_err(|e| anyhow::anyhow!("{}", format!("{e:#}").replace(url, &shown)))?;
    tracing::info!(database = %shown, "store ready");
    Ok(store)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
