//! What request handlers can see: the registry and the snapshots workers published, and the
//! families and flags the workers publish through. Nothing here performs I/O.

use std::sync::Arc;
use std::time::Instant;

use crate::database::{DatabaseStatus, Leadership};
use crate::events::SourceStatus;
use crate::families::{ExporterFamilies, FluxbaseFamilies};
use crate::health::HealthBoard;
use crate::http::auth::BearerToken;
use crate::metrics::{Registry, SeriesLimit};
use crate::process::ProcessSnapshot;
use crate::published::Published;
use crate::storage::ScanTotals;
use crate::upstream::Upstream;

/// Everything workers publish to and handlers read, built once at start-up (`app::run`) and
/// shared read-only: the workers get clones of its `Arc`s, the HTTP workers the whole.
pub struct State {
    /// Everything `/metrics` renders.
    pub registry: Registry,
    /// The Fluxbase families the workers feed (registered in `registry`).
    pub fluxbase: Arc<FluxbaseFamilies>,
    /// The exporter's own request counters, which the dispatch loop feeds.
    pub exporter: Arc<ExporterFamilies>,
    /// The latest reading of the exporter's own process.
    pub process: Arc<Published<ProcessSnapshot>>,
    /// The latest check of each Fluxbase service.
    pub health: Arc<HealthBoard>,
    /// What the database worker last found (`configured: false` when there is no database).
    pub database: Arc<Published<DatabaseStatus>>,
    /// Whether this exporter leads the exporters sharing the database (`database::leader`).
    pub leadership: Arc<Leadership>,
    /// The latest finished storage scan (`None` before the first, or when it failed).
    pub storage_scan: Arc<Published<Option<ScanTotals>>>,
    /// What each event source reports about itself, in the order of `config.events.files`, then
    /// the database.
    pub event_sources: Vec<Arc<Published<SourceStatus>>>,
    /// Fluxbase's own metrics endpoint, when configured (the JSON's runtime figures).
    pub upstream: Option<Arc<Upstream>>,
    /// The cardinality guard every family shares (registered in `registry`).
    pub limit: Arc<SeriesLimit>,
    /// When the exporter started (uptime counts from here).
    pub started: Instant,
    /// The token `/api/v1/monitoring/metrics` requires; `None` keeps it closed.
    pub auth_token: Option<BearerToken>,
    /// Where `/metrics` is served.
    pub telemetry_path: String,
}
