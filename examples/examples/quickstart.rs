//! The quick start: create a tenant, upload the seed ONNX model (a 100→64→10 MLP), serve it
//! with the built-in `builtin:tensor` function, invoke it and print its class probabilities.
//!
//! With a server running (`cargo run --release -p maas-cli -- serve`):
//!
//! ```sh
//! MAAS_URL=http://127.0.0.1:8080 MAAS_ADMIN_KEY=$(cat maas-data/admin.key) \
//!     cargo run -p maas-examples --example quickstart
//! ```
//!
//! The steps are in `maas_examples::quickstart` (examples/src/lib.rs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, admin_key) = maas_examples::from_env()?;
    maas_examples::quickstart(&url, &admin_key).await?;
    Ok(())
}
