//! A custom function: upload the `classify` WebAssembly component (functions/classify), which
//! turns `{"features": [...]}` into the model's input tensor, runs the seed model, and answers
//! the top-3 labels with their probabilities; deploy it and call it.
//!
//! With a server running (`cargo run --release -p maas-cli -- serve`):
//!
//! ```sh
//! MAAS_URL=http://127.0.0.1:8080 MAAS_ADMIN_KEY=$(cat maas-data/admin.key) \
//!     cargo run -p maas-examples --example custom_function
//! ```
//!
//! The component is built by the examples crate's build script; to write your own, copy
//! functions/template. The steps are in `maas_examples::custom_function` (examples/src/lib.rs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, admin_key) = maas_examples::from_env()?;
    maas_examples::custom_function(&url, &admin_key).await?;
    Ok(())
}
