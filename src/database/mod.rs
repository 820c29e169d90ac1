//! The database side: settings and connection, the pool, the queries, and the worker that
//! checks Fluxbase's PostgreSQL database on an interval and publishes what it found.

mod failure;
pub mod leader;
mod pool;
pub mod queries;
pub mod settings;
mod statements;
pub mod status;
pub mod tls;
mod worker;

pub use failure::{Failure, Reason};
pub use leader::{Election, Leadership, Role};
pub use pool::{DatabasePool, build as pool, build_lock as lock_pool};
pub use settings::DatabaseSettings;
pub use status::DatabaseStatus;
pub use worker::{DatabaseWorker, Outputs};
