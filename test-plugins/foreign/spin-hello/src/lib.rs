//! The Spin SDK 7 README's HTTP component, unmodified but for its greeting: a WASI 0.3
//! `wasi:http/handler@0.3.0` component that also imports WASI 0.2 interfaces (from std).

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

/// A simple Spin HTTP component.
#[http_service]
async fn hello_world(_req: Request) -> impl IntoResponse {
    "Hello, Spin!"
}
