//! Misbehaviour shared by the probe plugins (included with `#[path]`: test-only code that
//! has no place in the SDK).

use std::hint::black_box;

/// Busy-loops until the host interrupts it; `black_box` keeps the loop from being optimised
/// away.
pub fn spin() -> ! {
    let mut i = 0u64;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}
