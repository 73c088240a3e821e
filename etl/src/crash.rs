//! TESTING ONLY: crash points. With `FERRY_ETL_CRASH_AT=<point>` in its
//! environment, `ferry-etl` aborts — no flush, no cleanup, as under
//! `kill -9` — the first time it reaches that point, so tests can stop it
//! between any two steps of a write and check that a restart makes good.

/// The points, in the order a staged event goes through them.
pub const POINTS: &[&str] = &[
    "staged",          // a staging file is stored, its events not yet acked
    "intent-written",  // an hour's _CLOSING is stored, no part yet
    "part-written",    // the first part of an hour is stored
    "success-written", // the hour's _SUCCESS is stored, staging files not yet deleted
];

/// Aborts here if the environment names this point.
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown crash point {name}");
    if std::env::var("FERRY_ETL_CRASH_AT").is_ok_and(|at| at == name) {
        eprintln!("ferry-etl: crashing at {name} (FERRY_ETL_CRASH_AT)");
        std::process::abort();
    }
}
