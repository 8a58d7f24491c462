//! Hostile input, generated: property tests of every parser that faces it (forms, route
//! patterns, the config, tokens, the SQL rewriter, SQL values and rpc errors at the WIT
//! boundary, rpc payloads), and random malformed HTTP thrown at a running host.
//!
//! proptest rather than cargo-fuzz: it runs on the stable toolchain, inside `cargo test`,
//! seeded, so CI runs every target briefly on each change. Each target prints how many
//! inputs it ran. A longer run: `PROPTEST_CASES=200000 MICRO_API_FUZZ_HTTP_CASES=20000
//! cargo test --release -p micro-api --test fuzz -- --nocapture` (`PROPTEST_RNG_SEED`
//! picks another seed).
//!
//! One module per target; the runner and the input generator they share are here.

#[path = "../common/mod.rs"]
mod common;

mod config;
mod form;
mod http;
mod routes;
mod rpc;
mod sql;
mod tokens;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use micro_api::front::router::PathPattern;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestCaseError, TestRunner};

/// Runs `property` on `cases` inputs of `strategy` (or `PROPTEST_CASES`), with a fixed seed
/// unless `PROPTEST_RNG_SEED` is set, and reports the count.
fn fuzz<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: Debug,
{
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x6d69_6372_6f2d_6170);
    }
    config.failure_persistence = None;
    let inputs = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        inputs.fetch_add(1, Relaxed);
        property(input)
    });
    if let Err(e) = result {
        panic!("fuzz target {name}: {e}");
    }
    eprintln!(
        "fuzz target {name}: {} inputs, 0 failures",
        inputs.load(Relaxed)
    );
}

/// Bytes that are mostly `pieces` glued together, with arbitrary bytes among them: the
/// interesting inputs of a parser come up far more often than from random bytes alone.
fn glued(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(pieces).prop_map(|p| p.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => "\\PC{0,6}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|parts| parts.concat())
}

#[test]
fn the_generators_make_what_they_claim() {
    // The literal generator's pieces are what the rewriter must leave alone.
    let mut runner = TestRunner::deterministic();
    let tree = sql::sql_token().new_tree(&mut runner).unwrap();
    let _ = tree.current();
    let value = routes::pattern_and_paths()
        .new_tree(&mut runner)
        .unwrap()
        .current();
    assert!(PathPattern::parse(&value.0).is_ok(), "{value:?}");
}
