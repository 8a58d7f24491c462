//! A test-only `wasi:cli/command` component: valid, but of a world micro-api does not
//! serve, so the host must refuse it.

fn main() {
    println!("a command, not a plugin");
}
