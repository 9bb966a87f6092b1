//! Compiles the built-in guest functions (functions/tensor) to wasm32-wasip2 components and
//! places them in OUT_DIR, where `host` embeds them with `include_bytes!`.

use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    for wasm in maas_guest_build::build_guests(root, &["maas-fn-tensor"]) {
        let name = wasm.file_name().expect("wasm file name");
        std::fs::copy(&wasm, out_dir.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", Path::new(&wasm).display()));
    }
}
