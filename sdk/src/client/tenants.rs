//! Tenants (admin) and their keys (admin or owner).

use http::Method;
use maas_types::{
    CreateKey, CreateTenant, CreatedKey, KeyInfo, KeyList, QuotaPatch, Role, TenantInfo, TenantList, TenantUpdate,
};

use super::{Client, seg};
use crate::error::Result;

impl Client {
    /// `POST /v1/tenants`: a tenant with the default quota changed by `quota`.
    /// `409 conflict` if the name is taken, `400 invalid_request` for a bad name or value.
    pub async fn create_tenant(&self, name: &str, quota: Option<QuotaPatch>) -> Result<TenantInfo> {
        self.send_json(Method::POST, "/v1/tenants", &CreateTenant { name: name.to_string(), quota }).await?.json()
    }

    /// `GET /v1/tenants`: every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<TenantInfo>> {
        Ok(self.get::<TenantList>("/v1/tenants").await?.tenants)
    }

    /// `GET /v1/tenants/{t}`: one tenant with its quota and usage.
    pub async fn tenant(&self, tenant: &str) -> Result<TenantInfo> {
        self.get(&format!("/v1/tenants/{}", seg(tenant))).await
    }

    /// `PATCH /v1/tenants/{t}`: changes quota fields and/or suspension; returns the tenant.
    pub async fn update_tenant(&self, tenant: &str, update: &TenantUpdate) -> Result<TenantInfo> {
        self.send_json(Method::PATCH, &format!("/v1/tenants/{}", seg(tenant)), update).await?.json()
    }

    /// Changes quota fields of a tenant (a [`Client::update_tenant`] with only `quota`).
    pub async fn set_quota(&self, tenant: &str, quota: QuotaPatch) -> Result<TenantInfo> {
        self.update_tenant(tenant, &TenantUpdate { quota: Some(quota), suspended: None }).await
    }

    /// Suspends (`true`: its keys get `403`) or reinstates (`false`) a tenant.
    pub async fn set_suspended(&self, tenant: &str, suspended: bool) -> Result<TenantInfo> {
        self.update_tenant(tenant, &TenantUpdate { quota: None, suspended: Some(suspended) }).await
    }

    /// `DELETE /v1/tenants/{t}`: the tenant and everything it owns; its keys stop working at once.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<()> {
        self.delete(&format!("/v1/tenants/{}", seg(tenant))).await
    }

    /// `POST /v1/tenants/{t}/keys`: a new key; the secret is in the answer, this once.
    pub async fn create_key(&self, tenant: &str, role: Role, label: Option<&str>) -> Result<CreatedKey> {
        let body = CreateKey { role, label: label.map(str::to_string) };
        self.send_json(Method::POST, &format!("/v1/tenants/{}/keys", seg(tenant)), &body).await?.json()
    }

    /// `GET /v1/tenants/{t}/keys`: the tenant's keys, without secrets.
    pub async fn keys(&self, tenant: &str) -> Result<Vec<KeyInfo>> {
        Ok(self.get::<KeyList>(&format!("/v1/tenants/{}/keys", seg(tenant))).await?.keys)
    }

    /// `DELETE /v1/tenants/{t}/keys/{id}`: revokes a key at once.
    pub async fn revoke_key(&self, tenant: &str, id: &str) -> Result<()> {
        self.delete(&format!("/v1/tenants/{}/keys/{}", seg(tenant), seg(id))).await
    }
}
