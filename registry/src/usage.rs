//! Per-tenant usage counters, by day and function, kept for the runtime's metering.
//!
//! The runtime aggregates in memory and adds its deltas now and then with [`Registry::add_usage`];
//! [`Registry::usage`] returns the stored rows, from which it builds totals, per-function and per-day views.
//! Rows go away with their tenant.

use maas_types::Usage;
use maas_types::names::validate_function_name;
use serde::{Deserialize, Serialize};

use crate::Registry;
use crate::error::{Error, Result};
use crate::store::{Batch, T, key, prefix};

/// One stored usage row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The function, or `None` for OIP inference called directly.
    pub function: Option<String>,
    /// The counters.
    pub usage: Usage,
}

fn is_day(day: &str) -> bool {
    let b = day.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

impl Registry {
    /// Adds `delta` to the counters of `tenant` for `day` (`YYYY-MM-DD`, UTC) and `function` (`None`: direct
    /// OIP inference).
    ///
    /// [`Error::NotFound`] if the tenant does not exist (its usage is then gone anyway);
    /// [`Error::InvalidRequest`] for a malformed day, function name, or a negative or non-finite value.
    pub fn add_usage(&self, tenant: &str, day: &str, function: Option<&str>, delta: &Usage) -> Result<()> {
        if !is_day(day) {
            return Err(Error::InvalidRequest(format!("usage day {day:?} is not YYYY-MM-DD")));
        }
        if let Some(f) = function {
            validate_function_name(f).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        }
        if !delta.is_valid() {
            return Err(Error::InvalidRequest("usage values must be finite and not negative".into()));
        }
        let _w = self.inner.write_lock();
        self.require_tenant(tenant)?;
        let k = key(&[tenant.as_bytes(), day.as_bytes(), function.unwrap_or("").as_bytes()]);
        let mut record = self.trees().get_json::<UsageRecord>(T::Usage, &k)?.unwrap_or_else(|| UsageRecord {
            day: day.to_owned(),
            function: function.map(str::to_owned),
            usage: Usage::default(),
        });
        record.usage.add(delta);
        let mut batch = Batch::default();
        batch.insert_json(T::Usage, k, &record);
        self.trees().apply(&batch)
    }

    /// The tenant's usage rows, by day then function (direct inference first).
    pub fn usage(&self, tenant: &str) -> Result<Vec<UsageRecord>> {
        self.require_tenant(tenant)?;
        self.trees().scan_json(T::Usage, &prefix(&[tenant.as_bytes()]))
    }
}
