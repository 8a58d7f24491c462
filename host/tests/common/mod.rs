//! The integration-test harness: real `micro-api` processes, real components built from the
//! repo (by `cargo xtask test`), real HTTP, real databases. Every test binary declares
//! `mod common;` and names what it uses as `common::...`: the parts live in the modules
//! below, all re-exported here.
#![allow(dead_code)] // each test binary uses its own part of the harness

mod components;
mod databases;
mod host;
mod http;
mod servers;

// A test binary that uses nothing of one part leaves that part's re-export unused.
#[allow(unused_imports)]
pub use self::{components::*, databases::*, host::*, http::*, servers::*};

use std::time::Duration;

/// The middle of `values` (for the `*_figures` measurements).
pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}
