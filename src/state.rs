//! What every request handler may reach: the store, the clock, the engine and the settings
//! the server was started with.

use crate::clock::Clock;
use crate::domain::namespace::DEFAULT_NAMESPACE;
use crate::domain::runtime::Interpreters;
use crate::engine::sweeper::Sweeper;
use crate::engine::{Engine, EngineConfig};
use crate::keys;
use crate::store::DynStore;
use std::sync::Arc;
use std::time::Duration;

/// Everything a request handler may need, behind one pointer: the router clones the state for
/// every request (each layer and each extractor takes its own copy), and a struct of a dozen
/// `Arc`s cost a dozen atomic increments and decrements per copy, contended between the
/// runtime's threads; this costs one. The settings are filled in before the router is built
/// (`DerefMut` copies the fields if the state were already shared, so a later change would
/// not reach the router).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

/// What [`AppState`] points to.
#[derive(Clone)]
pub struct Shared {
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
    /// The engine's metrics, which the HTTP layer adds to.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where the metrics listener listens, if it was asked for.
    pub metrics_at: Option<std::net::SocketAddr>,
    pub keys: Arc<keys::KeyCache>,
    /// Functions as lookups by name found them a moment ago.
    pub functions: Arc<crate::service::function_cache::FunctionCache>,
    pub sweeper: Arc<Sweeper>,
    /// What one client may hold: connections, and time to send a request.
    pub limits: ServerLimits,
    /// Whether API calls may leave their body out of the signature (`UNSIGNED-PAYLOAD`).
    pub allow_unsigned_payload: bool,
    /// HTTPS, when a certificate is configured: connections are served through it, and
    /// answers say so (HSTS).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The host names requests may name; parsed once, at start.
    pub allowed_hosts: Arc<crate::app::AllowedHosts>,
    /// A reverse proxy in front sets `X-Forwarded-For` and `X-Forwarded-Proto`, which are
    /// believed only then.
    pub trusted_proxy: bool,
    pub sessions: crate::accounts::SessionSettings,
    /// Failed console logins, per address and name.
    pub logins: Arc<crate::accounts::LoginLimiter>,
}

/// Bounds on what clients can hold of the server, whatever they send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time to send a request's head, counted from when the connection opens or the previous
    /// response ends, so it also closes keep-alive connections left idle.
    pub header_timeout: Duration,
    /// Time to send a whole request body, counted from when its head arrived.
    pub body_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(120),
        }
    }
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
        Ok(Self(Arc::new(Shared {
            store,
            clock,
            regions: Arc::new(regions),
            interpreters,
            event_retention,
            timezone: time::UtcOffset::UTC,
            metrics: engine.metrics.clone(),
            metrics_at: None,
            engine,
            keys: Arc::default(),
            functions: Arc::default(),
            sweeper,
            limits: ServerLimits::default(),
            allow_unsigned_payload: false,
            allowed_hosts: Arc::default(),
            tls: None,
            trusted_proxy: false,
            sessions: Default::default(),
            logins: Arc::default(),
        })))
    }

    pub fn default_region(&self) -> &str {
        &self.regions[0]
    }
}
