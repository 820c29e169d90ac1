//! Integration tests: the real binary over real sockets, real promtool.

mod harness;
mod postgres;

mod config_and_lifecycle;
mod database;
mod docs;
mod events;
mod fleet;
mod fluxbase_api;
mod golden;
mod hostile;
mod http_surface;
mod kubernetes;
mod operations;
mod promtool;
mod properties;
mod standin;
mod storage;
mod tls;
mod upstream;
