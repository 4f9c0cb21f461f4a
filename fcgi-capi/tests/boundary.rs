//! Every export sits behind the panic boundary, and every `unsafe` says why it is sound: checked
//! in the source, so a new export cannot forget either.

use std::path::Path;

fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn every_export_body_is_a_panic_boundary() {
    let mut exports = 0;
    for (file, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("extern \"C\" fn ") {
                continue;
            }
            exports += 1;
            assert!(
                lines[..i].last().is_some_and(|l| l.trim() == "#[no_mangle]"),
                "{file}:{}: not #[no_mangle]",
                i + 1
            );
            // The body's first line (after a signature of one or more lines, and any constants).
            let open = (i..lines.len()).find(|&j| lines[j].trim_end().ends_with('{')).unwrap();
            let first = lines[open + 1..].iter().map(|l| l.trim()).find(|l| !l.starts_with("const ")).unwrap();
            assert!(
                first.starts_with("ffi_boundary!(") || first.starts_with("panic::ffi_boundary!("),
                "{file}:{}: the body of this export is not an ffi_boundary! block",
                i + 1
            );
        }
    }
    assert!(exports >= 30, "found {exports} exports");
}

#[test]
fn every_unsafe_block_and_impl_has_a_safety_comment() {
    for (file, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap();
            if !(code.contains("unsafe {") || code.contains("unsafe impl")) {
                continue;
            }
            // The comment may sit above the statement that holds the block (a `let`, a match arm).
            let above = lines[i.saturating_sub(6)..i].iter().any(|l| l.trim_start().starts_with("// SAFETY:"));
            assert!(above || line.contains("// SAFETY:"), "{file}:{}: unsafe without a // SAFETY: comment", i + 1);
        }
    }
}
