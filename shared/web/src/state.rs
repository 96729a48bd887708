//! What every request of the case web app shares: the store, who this node is, the county data in use
//! (catalogue, calendar), sessions, the tier's [`Site`], and the storage-fault latch.
//!
//! Nothing here touches sled on an async worker: reads that need the store are `*_blocking` or go
//! through [`blocking`].

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use automerge::ActorId;
use tongban_runtime::metrics::Metrics;
use tongban_runtime::store::{NodeIdentity, Store, StoreError};
use tongban_shared::calendar::Calendar;
use tongban_shared::catalog::Catalog;

use crate::accounts::Sessions;
use crate::error::AppError;
use crate::guard::LoginGuard;
use crate::site::Site;

/// Request bodies above this are refused with 413 before they are read into memory.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct AppState {
    pub store: Store,
    /// Read once at start: identity changes only through `enroll`, which needs a restart.
    pub identity: NodeIdentity,
    /// This node's automerge actor id; every change it makes to a case carries it.
    pub actor: ActorId,
    pub sessions: Sessions,
    /// Every password check goes through it (bounded, with lockout).
    pub login_guard: LoginGuard,
    /// This server's `GET /metrics` figures (shared with its sync tasks, which count there too).
    pub metrics: Arc<Metrics>,
    /// Throttles the public self-query page's guesses (per address and per case number).
    pub query_throttle: crate::throttle::QueryThrottle,
    pub started: Instant,
    /// What this tier adds (badge, hooks after writes, navigation).
    pub site: Arc<dyn Site>,
    /// The catalogue and calendar in use, replaced by [`AppState::refresh_county_data_blocking`] when
    /// sync or the county's admin stored newer versions. Pages read them without touching the store.
    county_data: RwLock<CountyData>,
    /// Set by the first failed write. From then on new cases are refused: after a failed write or
    /// fsync the store's state on disk is unknown, and acknowledging more work would be a promise
    /// the node cannot keep. Cleared by a restart (after the disk is fixed). Only storage faults set
    /// it; a refused write (bad input, wrong state) leaves the node taking cases.
    storage_fault: Mutex<Option<String>>,
    /// The county CA certificate browsers are asked to trust (`/ca`), once the tier has set it.
    county_ca: std::sync::OnceLock<CountyCa>,
}

/// The county CA as `/ca` offers it.
pub struct CountyCa {
    pub pem: String,
    /// SHA-256 of the certificate, as Windows' certificate dialog and the paper notice show it.
    pub fingerprint: String,
}

#[derive(Clone)]
struct CountyData {
    catalog: Arc<Catalog>,
    calendar_version: u32,
    calendar: Arc<Calendar>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// Reads identity, actor and county data from the store: call it from a blocking context (start-up).
    pub fn new_blocking(store: Store, site: Arc<dyn Site>) -> Result<AppState, StoreError> {
        AppState::new_blocking_with(
            store,
            site,
            crate::accounts::DEFAULT_IDLE_TIMEOUT,
            Arc::new(Metrics::new()),
        )
    }

    /// [`AppState::new_blocking`] with the serve command's session idle timeout and the metrics the
    /// tier's other tasks count into.
    pub fn new_blocking_with(
        store: Store,
        site: Arc<dyn Site>,
        idle_timeout: std::time::Duration,
        metrics: Arc<Metrics>,
    ) -> Result<AppState, StoreError> {
        Ok(AppState {
            identity: store.identity()?,
            actor: ActorId::from(store.actor()?),
            county_data: RwLock::new(load_county_data(&store)?),
            sessions: Sessions::new(idle_timeout),
            login_guard: LoginGuard::new(metrics.clone()),
            metrics,
            query_throttle: Default::default(),
            started: Instant::now(),
            site,
            storage_fault: Mutex::new(None),
            county_ca: std::sync::OnceLock::new(),
            store,
        })
    }

    /// [`AppState::new_blocking`] on a blocking thread.
    pub async fn new(
        store: Store,
        site: Arc<dyn Site>,
        idle_timeout: std::time::Duration,
        metrics: Arc<Metrics>,
    ) -> Result<SharedState, AppError> {
        blocking(move || {
            Ok(Arc::new(AppState::new_blocking_with(
                store,
                site,
                idle_timeout,
                metrics,
            )?))
        })
        .await
    }

    /// Offers `pem` as the county CA at `/ca` (set once, at start, by a tier that has one).
    pub fn set_county_ca(&self, pem: String) -> Result<(), AppError> {
        let fingerprint = tongban_runtime::tls::fingerprint(&pem).map_err(AppError::internal)?;
        let _ = self.county_ca.set(CountyCa { pem, fingerprint });
        Ok(())
    }

    pub fn county_ca(&self) -> Option<&CountyCa> {
        self.county_ca.get()
    }

    /// The catalogue in use.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.county_data().catalog
    }

    /// The working-day calendar in use.
    pub fn calendar(&self) -> Arc<Calendar> {
        self.county_data().calendar
    }

    /// The version of the calendar in use.
    pub fn calendar_version(&self) -> u32 {
        self.county_data().calendar_version
    }

    fn county_data(&self) -> CountyData {
        self.county_data
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Picks up a newer catalogue or calendar from the store (a sync session brought one, or the
    /// county's admin published one). Returns whether anything changed.
    pub fn refresh_county_data_blocking(&self) -> Result<bool, StoreError> {
        let current = self.county_data();
        if self.store.catalog_version()? <= current.catalog.version
            && self.store.calendar_version()? <= current.calendar_version
        {
            return Ok(false);
        }
        let newer = load_county_data(&self.store)?;
        tracing::info!(
            catalog = newer.catalog.version,
            calendar = newer.calendar_version,
            "county data updated"
        );
        *self.county_data.write().unwrap_or_else(|p| p.into_inner()) = newer;
        Ok(true)
    }

    /// Why the store failed, if a write has failed since start.
    pub fn storage_fault(&self) -> Option<String> {
        self.storage_fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a failed write (the first reason is kept) when `error` is a storage fault.
    pub fn note_write_error(&self, error: &AppError) {
        if let AppError::Storage(detail) = error {
            self.metrics.storage_fault();
            let mut fault = self.storage_fault.lock().unwrap_or_else(|p| p.into_inner());
            if fault.is_none() {
                tracing::error!(%detail, "store write failed; refusing new cases until restart");
                *fault = Some(detail.clone());
            }
        }
    }

    /// Refuses a write while the store is known to be failing.
    pub fn check_writable(&self) -> Result<(), AppError> {
        match self.storage_fault() {
            Some(detail) => Err(AppError::Storage(detail)),
            None => Ok(()),
        }
    }
}

fn load_county_data(store: &Store) -> Result<CountyData, StoreError> {
    Ok(CountyData {
        catalog: Arc::new(store.catalog()?),
        calendar_version: store.calendar_version()?,
        calendar: Arc::new(store.calendar()?),
    })
}

/// Runs blocking store work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await?
}
