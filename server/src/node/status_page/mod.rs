//! The status page `ferryd --metrics-listen` serves beside `/metrics`:
//!
//! - `/`: `page.html`, a self-contained page (no external assets) whose
//!   script renders `/status.json` and reloads it every few seconds;
//! - `/status.json`: the [`Document`](document::Document) — cluster, Raft
//!   groups, topics, subscriptions and backlogs — gathered on each request
//!   through the public API (`gather.rs`), so any node answers the same.
//!
//! A gathering calls other nodes, so at most [`GATHERINGS_MAX`] run at
//! once; a request beyond them is answered 503 at once rather than queued.

use std::sync::Arc;

use ferry_metrics::{RenderLater, Routes};
use tokio::sync::Semaphore;

pub mod document;
mod gather;

pub use gather::Gatherer;

const PAGE: &str = include_str!("page.html");

/// Status documents gathered at once, at most.
const GATHERINGS_MAX: usize = 4;

/// `routes` with the page and its document.
pub fn add_routes(routes: Routes, gatherer: Gatherer) -> Routes {
    let gatherer = Arc::new(gatherer);
    let gatherings = Arc::new(Semaphore::new(GATHERINGS_MAX));
    let document: RenderLater = Arc::new(move || {
        let (gatherer, gatherings) = (Arc::clone(&gatherer), Arc::clone(&gatherings));
        Box::pin(async move {
            let _gathering = gatherings.try_acquire().map_err(|_| {
                format!("{GATHERINGS_MAX} status documents are being gathered already; try again shortly")
            })?;
            serde_json::to_string_pretty(&gatherer.document().await).map_err(|e| e.to_string())
        })
    });
    routes.page("/", "text/html; charset=utf-8", Arc::new(|| PAGE.to_owned())).page_later(
        "/status.json",
        "application/json",
        document,
    )
}
