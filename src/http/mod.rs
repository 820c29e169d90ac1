//! The HTTP side: a fixed pool of worker threads over one tiny_http server, plain handler
//! functions, and the bodies they answer with.
//!
//! **Invariant:** handlers never touch the database, the filesystem or the network; they read
//! the [`State`](crate::state::State) that workers publish.

pub mod auth;
pub mod basic_auth;
mod bodies;
mod handlers;
mod server;
pub mod web_config;
pub mod web_reload;

pub use bodies::NO_DATABASE;
pub use handlers::{Handler, Reply, route};
pub use server::{HttpServer, Listen, Options, StartError};
