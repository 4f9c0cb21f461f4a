//! include/fcgi.h is what cbindgen makes of this crate, byte for byte. `FCGI_BLESS=1` rewrites
//! it instead of failing.

use std::path::Path;

#[test]
fn the_committed_header_is_the_generated_one() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.parent().unwrap().join("include/fcgi.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    if std::env::var_os("FCGI_BLESS").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&header, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/fcgi.h differs from what cbindgen generates from fcgi-capi/src; \
         run `FCGI_BLESS=1 cargo test -p fcgi-capi --test header` and commit the result.\n\
         --- generated ---\n{}",
        String::from_utf8_lossy(&generated)
    );
}

/// Every setting of the core's table that applies to C has its setter in the header.
#[test]
fn every_setting_has_its_c_setter() {
    let header = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/fcgi.h")).unwrap();
    for setting in fcgi_core::settings::SETTINGS {
        let Ok(setter) = setting.c_setter else { continue };
        let declaration = format!("fcgi_result fcgi_options_set_{setter}(fcgi_options *options");
        assert!(header.contains(&declaration), "{}: no {declaration}...) in include/fcgi.h", setting.name);
    }
}
