//! `GET /v1/tenants/{t}/usage`: what a tenant's invocations and inference cost, in total, per
//! function and per UTC day.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Response;
use maas_types::{DayUsage, Usage, UsageReport};

use super::Call;
use super::response::{Body, ok};
use crate::error::Result;
use crate::platform::Platform;

pub(super) async fn show(platform: Arc<Platform>, call: Call) -> Result<Response<Body>> {
    let tenant = call.tenant()?.name.clone();
    let rows = {
        let (platform, tenant) = (platform.clone(), tenant.clone());
        // Flushes pending usage into sled first.
        platform.pool.clone().run(move || platform.meter.usage(&platform.registry, &tenant)).await??
    };
    let model = platform.meter.model();
    let mut total = Usage::default();
    let mut direct = Usage::default();
    let mut functions: BTreeMap<String, Usage> = BTreeMap::new();
    let mut days: BTreeMap<String, Usage> = BTreeMap::new();
    for row in rows {
        total.add(&row.usage);
        days.entry(row.day).or_default().add(&row.usage);
        match row.function {
            Some(f) => functions.entry(f).or_default().add(&row.usage),
            None => direct.add(&row.usage),
        }
    }
    Ok(ok(&UsageReport {
        storage_bytes: platform.registry.storage_bytes(&tenant)?,
        tenant,
        totals: model.counters(total),
        functions: functions.into_iter().map(|(f, u)| (f, model.counters(u))).collect(),
        // Open Inference Protocol calls and explanations: no function of the tenant's own.
        direct_inference: model.counters(direct),
        days: days.into_iter().map(|(date, u)| DayUsage { date, counters: model.counters(u) }).collect(),
        energy_model: model,
    }))
}
