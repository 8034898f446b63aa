//! No source file imports a file that imports it back, directly or through others: the layering
//! of the crate's rooms stays a tree (`scripts/import-cycles` finds the circles).

#[test]
fn no_import_circles_between_source_files() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/import-cycles");
    let output = std::process::Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 runs scripts/import-cycles");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" 0 circles"), "{stdout}");
}
