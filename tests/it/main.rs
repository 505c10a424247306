//! scf-console's integration tests: one binary, one module per area of the product.

mod support;

mod accounts;
mod api;
mod attacks;
mod browser;
mod cluster;
mod concurrency;
mod doors;
mod engine;
mod events;
mod faults_runtime;
mod faults_store;
mod functions;
mod hostile;
mod monitoring;
mod namespaces;
mod nodes;
mod observability;
mod pages;
mod retention;
mod sandbox;
mod sdk;
mod server;
mod store_contract;
mod wizard;
