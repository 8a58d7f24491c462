//! The criterion micro-benchmarks of `host/benches/`: run after the load cases, their
//! medians read back from the `estimates.json` files criterion wrote during this run. The
//! `allocations` group is measured in allocations per iteration, not nanoseconds.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

use super::report::latency;
use super::{Options, json_field};
use crate::{cargo, target_dir, wasm_dir};

/// Runs the criterion benches of `host/benches/` and lists their medians.
pub(super) fn micro_benchmarks(root: &Path, options: &Options) -> Result<()> {
    let started = SystemTime::now();
    let quick = [
        "--warm-up-time",
        "0.2",
        "--measurement-time",
        "0.5",
        "--sample-size",
        "10",
    ];
    let mut extra = options.profile_args();
    extra.push("--".into());
    if options.short {
        extra.extend(quick.iter().map(|s| s.to_string()));
    }
    let components = wasm_dir(root);
    cargo(
        &["bench", "--package", "micro-api", "--bench", "invocation"],
        &extra,
        &[("MICRO_API_TEST_COMPONENTS", components.as_os_str())],
    )?;
    let mut medians = Vec::new();
    collect_medians(&target_dir(root).join("criterion"), started, &mut medians)?;
    medians.sort_by(|a, b| a.0.cmp(&b.0));
    let (counts, times): (Vec<_>, Vec<_>) = medians
        .into_iter()
        .partition(|(id, _)| id.starts_with(ALLOCATIONS_GROUP));
    println!("\n## Micro-benchmarks (criterion medians)\n");
    println!("| benchmark | median |\n|---|---:|");
    for (id, ns) in times {
        println!("| {id} | {} |", latency(ns / 1e3));
    }
    if !counts.is_empty() {
        println!("\n| benchmark | allocations per iteration (median) |\n|---|---:|");
        for (id, allocations) in counts {
            println!("| {id} | {allocations:.0} |");
        }
    }
    Ok(())
}

/// The criterion group of `host/benches/invocation.rs` that counts allocations.
const ALLOCATIONS_GROUP: &str = "allocations/";

/// `(group/function, median ns)` of every criterion estimate written since `since`.
fn collect_medians(dir: &Path, since: SystemTime, out: &mut Vec<(String, f64)>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let estimates = path.join("new/estimates.json");
        if estimates.is_file() {
            let fresh = std::fs::metadata(&estimates)?.modified()? >= since;
            let text = std::fs::read_to_string(&estimates)?;
            let benchmark = std::fs::read_to_string(path.join("new/benchmark.json")).ok();
            if let (true, Some(median), Some(id)) = (
                fresh,
                median_ns(&text),
                benchmark.and_then(|b| json_field(&b, "full_id")),
            ) {
                out.push((id, median));
            }
        } else if path.is_dir() {
            collect_medians(&path, since, out)?;
        }
    }
    Ok(())
}

/// The median's point estimate in criterion's `estimates.json`.
fn median_ns(estimates: &str) -> Option<f64> {
    let median = &estimates[estimates.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_medians() {
        let estimates = r#"{"mean":{"point_estimate":9.0},"median":{"confidence_interval":{"lower_bound":1.0},"point_estimate":1234.5,"standard_error":2.0}}"#;
        assert_eq!(median_ns(estimates), Some(1234.5));
    }
}
