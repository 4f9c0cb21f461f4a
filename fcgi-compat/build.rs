//! Compiles the C part of the library (src/c/) and exports its functions from the shared
//! library, and gives that library its versioned soname.
//!
//! rustc links a cdylib with a version script that exports the Rust functions only, so the C
//! functions would stay local. A second version script, merged by the linker, names them too;
//! `--undefined` pulls each one in from the archive even when no Rust code calls it.

use std::path::PathBuf;

/// The functions and data of src/c/ that programs call, as declared in include/compat/.
const C_EXPORTS: &[&str] = &[
    // fcgiapp.h: the variadic printf pair.
    "FCGX_FPrintF",
    "FCGX_VFPrintF",
    // fcgi_stdio.h.
    "_fcgi_sF",
    "FCGI_Accept",
    "FCGI_Finish",
    "FCGI_StartFilterData",
    "FCGI_SetExitStatus",
    "FCGI_perror",
    "FCGI_fopen",
    "FCGI_fclose",
    "FCGI_fflush",
    "FCGI_freopen",
    "FCGI_setvbuf",
    "FCGI_setbuf",
    "FCGI_fseek",
    "FCGI_ftell",
    "FCGI_rewind",
    "FCGI_fgetpos",
    "FCGI_fsetpos",
    "FCGI_fgetc",
    "FCGI_getchar",
    "FCGI_ungetc",
    "FCGI_fgets",
    "FCGI_fputc",
    "FCGI_putchar",
    "FCGI_fputs",
    "FCGI_puts",
    "FCGI_fprintf",
    "FCGI_printf",
    "FCGI_vfprintf",
    "FCGI_vprintf",
    "FCGI_fread",
    "FCGI_fwrite",
    "FCGI_feof",
    "FCGI_ferror",
    "FCGI_clearerr",
    "FCGI_tmpfile",
    "FCGI_fileno",
    "FCGI_fdopen",
    "FCGI_popen",
    "FCGI_pclose",
];

fn main() {
    let sources = ["src/c/fcgx_printf.c", "src/c/fcgi_stdio.c"];
    cc::Build::new()
        .files(sources)
        .include("../include/compat")
        .flag("-std=c11")
        .define("_POSIX_C_SOURCE", "200809L")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("fcgi_compat_c");
    for source in sources {
        println!("cargo:rerun-if-changed={source}");
    }
    for header in ["fastcgi.h", "fcgiapp.h", "fcgi_stdio.h"] {
        println!("cargo:rerun-if-changed=../include/compat/{header}");
    }

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("c-exports.map");
    let globals: String = C_EXPORTS.iter().map(|name| format!("{name}; ")).collect();
    std::fs::write(&script, format!("{{ global: {globals}}};\n")).expect("OUT_DIR is writable");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
    for name in C_EXPORTS {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--undefined={name}");
    }

    // 0.x releases keep ABI 0; from 1.0 on the soname follows the major version. `cargo
    // cinstall` gives the same ([package.metadata.capi.library] in Cargo.toml); this one is for a
    // plain `cargo build`, which the tests and the examples link against.
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfcgi_compat.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
