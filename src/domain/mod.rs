//! The product's rules, free of I/O: shared by the console and the SCF API.

pub mod api_key;
pub mod event;
pub mod event_query;
pub mod function;
pub mod namespace;
pub mod package;
pub mod rules;
pub mod runtime;
pub mod template;
pub mod user;
