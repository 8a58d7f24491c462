//! A test-only service that misbehaves on demand, for the host's integration tests:
//! slow, failing, trapping, spinning or memory-hungry calls, nested rpc and config reads, and
//! any SQL statement a hostile plugin might try (`sql`).

use std::hint::black_box;
use std::time::Duration;

#[path = "../../misbehave.rs"]
mod misbehave;

use micro_api_sdk::{Error, config, error, rpc, service, sql};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Probe;

impl service::Guest for Probe {
    fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        match method.as_str() {
            "echo" => Ok(payload),
            "sleep" => service::json(&payload, sleep),
            "fail" => Err(error::unavailable("probe failed on purpose")),
            "app-error" => Err(error::app("nope", "refused on purpose")),
            "trap" => panic!("probe panicked on purpose"),
            "spin" => misbehave::spin(),
            "grow" => service::json(&payload, grow),
            "recurse" => Ok(recurse(black_box(u64::MAX)).to_le_bytes().to_vec()),
            // The callee's answer and errors go back untouched.
            "call" => {
                let Call {
                    service,
                    method,
                    payload,
                } = service::decode(&payload)?;
                rpc::call(&service, &method, &service::encode(&payload)?)
            }
            "config" => service::json(&payload, |Key { key }| {
                Ok(json!({ "value": config::get(&key)? }))
            }),
            "tx" => service::json(&payload, transaction),
            "slow-insert" => service::json(&payload, slow_insert),
            "count" => service::json(&payload, |Key { key }| {
                create_table()?;
                let rows = sql::query(
                    "SELECT COUNT(*) AS `n` FROM `probe_kv` WHERE `k` = ?",
                    &[key.as_str().into()],
                )?;
                let n: i64 = rows.first().map_or(Ok(0), |row| row.get("n"))?;
                Ok(json!({ "count": n }))
            }),
            // A host error comes back as 200 `{"error": kind, "message"}`, so a test reads
            // which error the host answered (the HTTP front would make it a 500).
            "sql" => service::json(&payload, |statement: Statement| Ok(outcome(run(statement)))),
            other => Err(service::unknown_method(other)),
        }
    }
}

micro_api_sdk::export_service!(Probe);

#[derive(Deserialize, Serialize)]
struct Millis {
    ms: u64,
}

fn sleep(Millis { ms }: Millis) -> Result<Value, Error> {
    std::thread::sleep(Duration::from_millis(ms));
    Ok(json!({ "slept": ms }))
}

#[derive(Deserialize)]
struct Megabytes {
    mb: u64,
}

/// Allocates `mb` MiB and writes all of it, so the memory really grows.
fn grow(Megabytes { mb }: Megabytes) -> Result<Value, Error> {
    let size = mb
        .checked_mul(1 << 20)
        .and_then(|size| usize::try_from(size).ok())
        .ok_or_else(|| error::invalid("too many megabytes"))?;
    // Not zeroes, so that every byte is written: zeroed memory may never be touched.
    let bomb = vec![1u8; size];
    black_box(&bomb);
    Ok(json!({ "grown": mb }))
}

#[derive(Deserialize)]
struct Call {
    service: String,
    method: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

#[derive(Deserialize)]
struct Tx {
    key: String,
    /// `commit`, `rollback`, `trap` (panic with the transaction open) or `leave` (return
    /// without ending it).
    then: String,
}

fn create_table() -> Result<(), Error> {
    sql::execute(
        "CREATE TABLE IF NOT EXISTS `probe_kv` (`k` VARCHAR(64) NOT NULL)",
        &[],
    )?;
    Ok(())
}

/// Inserts `key` inside a transaction, then ends the request as `then` says.
fn transaction(Tx { key, then }: Tx) -> Result<Value, Error> {
    create_table()?;
    sql::begin()?;
    sql::execute(
        "INSERT INTO `probe_kv` (`k`) VALUES (?)",
        &[key.as_str().into()],
    )?;
    match then.as_str() {
        "commit" => sql::commit()?,
        "rollback" => sql::rollback()?,
        "trap" => panic!("probe trapped inside a transaction"),
        _ => {}
    }
    Ok(json!({ "then": then }))
}

/// Recurses until the stack overflows (each frame keeps a buffer alive).
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if depth == 0 {
        return frame[0];
    }
    recurse(depth - 1).wrapping_add(frame[1])
}

#[derive(Deserialize)]
struct SlowInsert {
    ms: u64,
    key: String,
}

/// Sleeps, then writes `key`: the row must never appear when the caller's deadline passed
/// during the sleep (the host stops the callee there).
fn slow_insert(SlowInsert { ms, key }: SlowInsert) -> Result<Value, Error> {
    create_table()?;
    std::thread::sleep(Duration::from_millis(ms));
    sql::execute(
        "INSERT INTO `probe_kv` (`k`) VALUES (?)",
        &[key.as_str().into()],
    )?;
    Ok(json!({ "inserted": key }))
}

#[derive(Deserialize)]
struct Statement {
    sql: String,
    #[serde(default)]
    params: Vec<Value>,
    /// `execute` (the affected row count) instead of `query` (the rows).
    #[serde(default)]
    execute: bool,
}

/// Runs `sql` as it is: `{"columns", "rows"}` of a query (a blob as its length), or the
/// count of an execute.
fn run(statement: Statement) -> Result<Value, Error> {
    let params: Vec<sql::Value> = statement
        .params
        .iter()
        .map(|p| match p {
            Value::Null => sql::Value::Null,
            Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default().into(),
            Value::Number(n) => n.as_f64().unwrap_or_default().into(),
            Value::String(s) => s.as_str().into(),
            other => other.to_string().into(),
        })
        .collect();
    if statement.execute {
        return Ok(json!(sql::execute(&statement.sql, &params)?));
    }
    let rows = sql::query(&statement.sql, &params)?;
    let values: Vec<Vec<Value>> = rows
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| match v {
                    sql::Value::Null => Value::Null,
                    sql::Value::Integer(i) => json!(i),
                    sql::Value::Real(f) => json!(f),
                    sql::Value::Text(t) => json!(t),
                    sql::Value::Blob(b) => json!(b.len()),
                })
                .collect()
        })
        .collect();
    Ok(json!({ "columns": rows.columns, "rows": values }))
}

/// `{"ok": value}`, or the host's error as `{"error": kind, "message"}`.
fn outcome(result: Result<Value, Error>) -> Value {
    let (kind, message) = match result {
        Ok(value) => return json!({ "ok": value }),
        Err(Error::Invalid(m)) => ("invalid", m),
        Err(Error::Forbidden(m)) => ("forbidden", m),
        Err(Error::Unavailable(m)) => ("unavailable", m),
        Err(Error::App(e)) => ("app", e.message),
        Err(other) => ("other", format!("{other:?}")),
    };
    json!({ "error": kind, "message": message })
}
