//! No source file imports a file that imports it back, directly or through others, and no room
//! imports a room above it (config < api < node < lsps1 < http < app; the devchain only from
//! the app; the CLI only config and api). `scripts/import-cycles` finds both.

#[test]
fn no_import_circles_and_no_room_imports_a_room_above_it() {
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
    assert!(stdout.contains(" 0 layering breaks"), "{stdout}");
}
