//! Builds the guest functions the end-to-end tests deploy (the example `classify`, the
//! `misbehave` test guest, and `compat`, built against the previous function world) and tells the
//! harness where they are.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    for wasm in maas_guest_build::build_guests(root, &["maas-fn-classify", "maas-fn-misbehave", "maas-fn-compat"]) {
        let name = wasm.file_name().expect("wasm file name");
        std::fs::copy(&wasm, out_dir.join(name)).expect("copy guest");
    }
    println!("cargo:rustc-env=MAAS_GUEST_DIR={}", out_dir.display());
}
