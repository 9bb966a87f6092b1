//! A 64 KiB stack instead of Rust's default 1 MiB for the wasm build. The stack sits at the
//! bottom of linear memory; with it small, what a request touches (stack, data, heap) stays in
//! the first 256 KiB, which the maas host keeps resident between instances instead of unmapping
//! it and faulting it in again on every request. Raise it if your handler recurses deeply.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size=65536");
    }
}
