//! scf-console's integration tests: one binary, one module per area of the product.

mod support;

mod functions;
mod namespaces;
mod pages;
mod server;
mod wizard;
