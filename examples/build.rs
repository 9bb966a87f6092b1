//! Builds the guest functions the walk-throughs deploy (the example `classify` and the
//! template users copy) and tells the crate where they are.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    for wasm in maas_guest_build::build_guests(root, &["maas-fn-classify", "maas-fn-template"]) {
        let name = wasm.file_name().expect("wasm file name");
        std::fs::copy(&wasm, out_dir.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", wasm.display()));
    }
    println!("cargo:rustc-env=MAAS_EXAMPLES_GUEST_DIR={}", out_dir.display());
}
