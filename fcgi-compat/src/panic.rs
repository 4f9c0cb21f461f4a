//! The panic boundary every export sits behind: a panic must never unwind into C, so it
//! becomes the function's error return at the edge (as `fcgi-capi`'s `ffi_boundary!`, and
//! rustls-ffi's `ffi_panic_boundary!`).

/// Runs a block under `catch_unwind`; a panic yields `on_panic`. `return` inside the block
/// returns from the block.
macro_rules! boundary {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}

pub(crate) use boundary;
