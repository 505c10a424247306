//! Metrics over HTTP: the layer that times every request, and the scrape answered on the
//! metrics listener, which is apart from the console's port so that it is never open there
//! without a login.

use crate::metrics::{CONTENT_TYPE, HttpLabels, Metrics, Name, Route, set_counter};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::Instant;

/// What the metrics listener serves: the scrape and the two probes, nothing of the console.
pub fn listener_routes(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(super::system::healthz))
        .route("/readyz", get(super::system::readyz))
        .with_state(state)
}

/// Times a request and counts it under its matched route, method, status and, for an API
/// call, its SCF action. Runs inside the router, where the matched route is known.
///
/// The labels multiply, and anyone can send any method and header to any path: so the SCF
/// action is read only where the API is served (`/`), and a path that matches no route is
/// counted under one method and no action, whatever it was sent with.
pub async fn record(
    State(metrics): State<Arc<Metrics>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    use futures_util::FutureExt;
    let started = Instant::now();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let (method, action) = match &matched {
        None => ("other", ""),
        Some(route) => {
            let action = (route.as_str() == "/")
                .then(|| req.headers().get("x-tc-action"))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .map_or("", crate::scf::action_label);
            (method_label(req.method()), action)
        }
    };
    let labels = |status: u16| HttpLabels {
        route: Route(matched.clone()),
        method: Name(method),
        status,
        action: Name(action),
    };
    // A handler that panics is answered 500 further out; it is counted as one here.
    let response = match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            metrics
                .http
                .get_or_create(&labels(500))
                .observe(started.elapsed().as_secs_f64());
            std::panic::resume_unwind(panic);
        }
    };
    metrics
        .http
        .get_or_create(&labels(response.status().as_u16()))
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The console and the API take GET and POST; anything else is one label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => "other",
    }
}

/// The scrape: the gauges are read from the engine, the store and the sweeper now, then every
/// metric is rendered.
async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let sampled = &metrics.sampled;
    let now = state.clock.now_millis();
    match state.store.queue_depth(now).await {
        Ok(depth) => {
            sampled.queued.set(depth.queued as f64);
            let age = depth
                .oldest_due_at
                .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
            sampled.queue_oldest_age.set(age);
        }
        // Not a stale figure: no figure, which Prometheus shows as a gap.
        Err(e) => {
            tracing::warn!(error = %e, "reading the queue's depth for metrics failed");
            sampled.queued.set(f64::NAN);
            sampled.queue_oldest_age.set(f64::NAN);
        }
    }
    if let Ok(size) = state.store.size().await {
        sampled.store_bytes.set(size.bytes as i64);
        sampled.store_free_bytes.set(size.free_bytes as i64);
    }
    let health = state.store.write_health();
    sampled
        .store_can_write
        .set(i64::from(health.fault().is_none()));
    set_counter(&sampled.store_write_failures, health.total_failures());
    sampled.running.set(state.engine.running_total() as i64);
    sampled
        .idle_instances
        .set(state.engine.idle_instances() as i64);
    let sweep = state.sweeper.status();
    set_counter(&sampled.sweeper_runs, sweep.runs);
    set_counter(&sampled.sweeper_failures, sweep.failures);
    set_counter(&sampled.sweeper_events_removed, sweep.total_removed);
    sampled
        .sweeper_last_run
        .set(sweep.last_run.map_or(0, |at| at / 1000));
    let mut response = metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
