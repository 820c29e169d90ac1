//! Event ingestion: Fluxbase's own request, auth, storage and rate-limit traffic, read from its
//! logs (JSON lines, followed like `tail -F`) or from its `logging.entries` table, and counted
//! into the page's families with Fluxbase's label rules.

pub mod cursor;
pub mod follow;
pub mod json;
pub mod mapping;
pub mod parse;
pub mod sources;

pub use sources::{DatabaseSource, FileSource, Outputs, SourceStatus, StdinSource};
