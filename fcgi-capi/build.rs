//! Gives the shared library its versioned soname, so programs link against the ABI version
//! (`libfcgi_capi.so.0`) rather than the unversioned development name. `cargo cinstall` gives
//! the library it installs the same soname, from `version_suffix_components = 1` in Cargo.toml;
//! this one is for a plain `cargo build`, which the tests and the C examples link against.

fn main() {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    // 0.x releases keep ABI 0; from 1.0 on the soname follows the major version.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfcgi_capi.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
