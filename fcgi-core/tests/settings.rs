//! docs/SETTINGS.md is what the settings table says, byte for byte. `FCGI_BLESS=1` rewrites it
//! instead of failing.

use std::path::Path;

#[test]
fn the_committed_settings_page_is_the_generated_one() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/SETTINGS.md");
    let generated = fcgi_core::settings::markdown();
    if std::env::var_os("FCGI_BLESS").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&page, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/SETTINGS.md differs from the table in fcgi-core/src/runtime/settings.rs; run \
         `FCGI_BLESS=1 cargo test -p fcgi-core --test settings` and commit the result.\n--- generated ---\n{generated}"
    );
}
