//! scf-console: a self-hosted console for asynchronous serverless functions with status trace.

/// Console users: passwords, logins, sessions.
pub mod accounts;
/// Router assembly and the server's life cycle.
pub mod app;
/// The audit trail of changes and logins.
pub mod audit;
/// Time, injectable so that time-based rules are testable.
pub mod clock;
/// Command line and settings.
pub mod config;
/// The product's rules, free of I/O.
pub mod domain;
/// Running functions: interpreters, and later queue, workers and sweeper.
pub mod engine;
/// The console's error type and its rendering.
pub mod error;
/// API keys, however they are made.
pub mod keys;
/// What operators scrape: counters, histograms and gauges in Prometheus's text format.
pub mod metrics;
/// What the process sets about itself at start: file modes and inherited descriptors.
pub mod process;
/// SCF API 3.0: signatures, actions, models and error codes.
pub mod scf;
/// The use cases both doors share, with typed outcomes.
pub mod service;
/// What every request handler may reach, shared by the console and the API.
pub mod state;
/// Persistence behind one interface.
pub mod store;
/// Console pages, fragments and static assets.
pub mod web;
