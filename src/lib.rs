//! fluxbase-exporter: the monitoring surface of Fluxbase's "Monitoring & Observability" page
//! (Prometheus metrics, JSON system metrics, health checks), measured from outside Fluxbase.
//!
//! See ARCHITECTURE.md for the codemap, the thread model and the invariants.

#![forbid(unsafe_code)]

pub mod app;
pub mod build_info;
pub mod catalog;
pub mod config;
pub mod database;
pub mod duration;
pub mod events;
pub mod families;
pub mod fluxbase_api;
pub mod fluxbase_config;
pub mod health;
pub mod healthcheck;
pub mod http;
pub mod incremental;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod published;
pub mod state;
pub mod storage;
pub mod systemd;
pub mod timestamp;
pub mod upstream;
pub mod workers;

pub use app::run;
pub use config::Config;
