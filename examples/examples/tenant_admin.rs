//! Tenant administration: a tenant with its own quota, an owner key and an invoker key; the
//! invoker cannot upload (`403 forbidden`) but can invoke; revoking a key and suspending the
//! tenant take effect at once; every change is in the audit trail.
//!
//! With a server running (`cargo run --release -p maas-cli -- serve`):
//!
//! ```sh
//! MAAS_URL=http://127.0.0.1:8080 MAAS_ADMIN_KEY=$(cat maas-data/admin.key) \
//!     cargo run -p maas-examples --example tenant_admin
//! ```
//!
//! The steps are in `maas_examples::tenant_admin` (examples/src/lib.rs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, admin_key) = maas_examples::from_env()?;
    maas_examples::tenant_admin(&url, &admin_key).await?;
    Ok(())
}
