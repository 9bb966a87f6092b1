//! Functions: deploy, list, show, delete (owner).

use http::{Method, StatusCode};
use maas_types::{Deployment, FunctionInfo, FunctionList, Manifest};

use super::{Client, seg};
use crate::error::Result;

impl Client {
    /// `PUT /v1/tenants/{t}/functions/{f}`: deploys (or redeploys) a function.
    pub async fn deploy(&self, tenant: &str, name: &str, manifest: &Manifest) -> Result<Deployment> {
        let path = format!("/v1/tenants/{}/functions/{}", seg(tenant), seg(name));
        let answer = self.send_json(Method::PUT, &path, manifest).await?;
        let created = answer.status == StatusCode::CREATED;
        Ok(Deployment { created, function: answer.json()? })
    }

    /// `GET /v1/tenants/{t}/functions`: every function with its live status.
    pub async fn functions(&self, tenant: &str) -> Result<Vec<FunctionInfo>> {
        Ok(self.get::<FunctionList>(&format!("/v1/tenants/{}/functions", seg(tenant))).await?.functions)
    }

    /// `GET /v1/tenants/{t}/functions/{f}`: the manifest, revision, URL and live status.
    pub async fn function(&self, tenant: &str, name: &str) -> Result<FunctionInfo> {
        self.get(&format!("/v1/tenants/{}/functions/{}", seg(tenant), seg(name))).await
    }

    /// `DELETE /v1/tenants/{t}/functions/{f}`.
    pub async fn delete_function(&self, tenant: &str, name: &str) -> Result<()> {
        self.delete(&format!("/v1/tenants/{}/functions/{}", seg(tenant), seg(name))).await
    }
}
