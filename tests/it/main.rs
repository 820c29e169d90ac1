//! Integration tests: the real binary over real sockets, real promtool.

mod harness;

mod config_and_lifecycle;
mod docs;
mod http_surface;
mod promtool;
