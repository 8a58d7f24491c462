//! A test-only HTTP handler built in three flavours (features), so the hot-reload tests
//! can swap versions that answer differently: `greeter v1`, `greeter v2`, and a broken one
//! that fails every request.

use micro_api_sdk::http::{Handler, HttpError, Request, Response};

struct Greeter;

const GREETING: &str = if cfg!(feature = "v2") {
    "greeter v2"
} else {
    "greeter v1"
};

impl Handler for Greeter {
    fn handle(_request: Request) -> Result<Response, HttpError> {
        if cfg!(feature = "broken") {
            panic!("greeter is broken on purpose");
        }
        Ok(Response::text(200, GREETING))
    }
}

micro_api_sdk::export_http!(Greeter);
