//! The HTTP side: a fixed pool of worker threads over one tiny_http server, plain handler
//! functions, and the bodies they answer with.
//!
//! **Invariant:** handlers never touch the database, the filesystem or the network; they read
//! the [`State`](crate::state::State) that workers publish.

pub mod auth;
mod bodies;
mod handlers;
mod server;

pub use bodies::NO_DATABASE;
pub use handlers::{Handler, Reply, route};
pub use server::{HttpServer, Options, StartError};
