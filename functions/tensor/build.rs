//! A 64 KiB stack instead of Rust's default 1 MiB for the wasm build: the stack sits at the
//! bottom of linear memory, so with it small, everything a request touches (stack, data, heap)
//! lies in the first few hundred KiB, which the host keeps resident between instances instead
//! of unmapping and faulting it in again on every request.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size=65536");
    }
}
