//! Integration tests: the real binary over real sockets, real promtool.

mod harness;
mod postgres;

mod config_and_lifecycle;
mod database;
mod docs;
mod events;
mod hostile;
mod http_surface;
mod operations;
mod promtool;
mod properties;
mod storage;
mod tls;
