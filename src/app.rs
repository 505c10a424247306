//! Application state, router assembly and the server's life: start, serve, shut down.

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::namespace::DEFAULT_NAMESPACE;
use crate::domain::runtime::Interpreters;
use crate::engine::sweeper::Sweeper;
use crate::engine::{Engine, EngineConfig};
use crate::store::DynStore;
use crate::{engine, keys, store, web};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Request, header};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub clock: Clock,
    /// Regions offered, the first being the default.
    pub regions: Arc<Vec<String>>,
    pub interpreters: Arc<Interpreters>,
    /// How long event records are kept after they end (and after status trace is turned off).
    pub event_retention: Duration,
    /// The zone of the API's time strings.
    pub timezone: time::UtcOffset,
    pub engine: Arc<Engine>,
    pub keys: Arc<keys::KeyCache>,
    pub sweeper: Arc<Sweeper>,
}

impl AppState {
    /// Prepares the store for the given regions (each gets its `default` namespace) and starts
    /// the engine with its default configuration.
    pub async fn new(
        store: DynStore,
        clock: Clock,
        regions: Vec<String>,
        interpreters: Interpreters,
        event_retention: Duration,
    ) -> anyhow::Result<Self> {
        Self::with_engine(
            store,
            clock,
            regions,
            interpreters,
            event_retention,
            EngineConfig::default(),
        )
        .await
    }

    pub async fn with_engine(
        store: DynStore,
        clock: Clock,
        regions: Vec<String>,
        interpreters: Interpreters,
        event_retention: Duration,
        engine: EngineConfig,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !regions.is_empty(),
            "at least one region must be configured"
        );
        for region in &regions {
            anyhow::ensure!(
                crate::domain::namespace::is_valid_namespace_name(region),
                "region {region:?} may contain only letters, digits, - and _"
            );
            store
                .ensure_namespace(region, DEFAULT_NAMESPACE, clock.now_millis())
                .await?;
        }
        let interpreters = Arc::new(interpreters);
        let engine =
            Engine::start(store.clone(), clock.clone(), interpreters.clone(), engine).await?;
        let sweeper = Arc::new(Sweeper::new(
            store.clone(),
            clock.clone(),
            event_retention,
            Duration::from_secs(60),
        ));
        Ok(Self {
            store,
            clock,
            regions: Arc::new(regions),
            interpreters,
            event_retention,
            timezone: time::UtcOffset::UTC,
            engine,
            keys: Arc::default(),
            sweeper,
        })
    }

    pub fn default_region(&self) -> &str {
        &self.regions[0]
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface as a pure function of state, so tests can drive it in-process.
pub fn router(state: AppState) -> Router {
    web::routes()
        .with_state(state)
        // One URL serves a page or an htmx fragment, so caches must key on HX-Request.
        .layer(SetResponseHeaderLayer::appending(
            header::VARY,
            HeaderValue::from_static("HX-Request"),
        ))
        .layer(CompressionLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts scf-console with the given settings and runs until Ctrl-C or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let url = settings.database_url();
    let store = store::open(&url).await?;
    tracing::info!(database = %url, "store ready");
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
    state.timezone = settings.timezone;
    if let (Some(id), Some(key)) = (&settings.secret_id, &settings.secret_key) {
        keys::put_configured(&state, id, key).await?;
        tracing::info!(secret_id = %id, "API key from the configuration is ready");
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("scf-console listening on http://{addr}");
    state.sweeper.set_interval(settings.sweep_interval.0);
    state.sweeper.start();
    let (engine, sweeper) = (state.engine.clone(), state.sweeper.clone());
    serve(listener, state, shutdown_signal()).await?;
    sweeper.stop().await;
    engine.shutdown().await;
    store.close().await;
    tracing::info!("scf-console stopped");
    Ok(())
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
