//! Usage: the counters the runtime meters, the usage report, and how CPU time becomes energy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Counters of one tenant, day and function (or of the tenant's direct OIP inference calls).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Invocations (or inference requests).
    pub invocations: u64,
    /// Invocations that ended in an error.
    pub errors: u64,
    /// Cold starts.
    pub cold_starts: u64,
    /// Wall-clock time, seconds.
    pub wall_seconds: f64,
    /// CPU time, seconds.
    pub cpu_seconds: f64,
    /// Time spent in model inference, seconds.
    pub inference_seconds: f64,
    /// Estimated energy, joules.
    pub energy_joules: f64,
}

impl Usage {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Usage) {
        self.invocations = self.invocations.saturating_add(other.invocations);
        self.errors = self.errors.saturating_add(other.errors);
        self.cold_starts = self.cold_starts.saturating_add(other.cold_starts);
        self.wall_seconds += other.wall_seconds;
        self.cpu_seconds += other.cpu_seconds;
        self.inference_seconds += other.inference_seconds;
        self.energy_joules += other.energy_joules;
    }

    /// Whether every time and energy figure is finite and not negative.
    pub fn is_valid(&self) -> bool {
        [self.wall_seconds, self.cpu_seconds, self.inference_seconds, self.energy_joules]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
    }
}

/// How CPU time becomes energy and CO2e. Both figures are configurable because they depend on
/// the machine and the grid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnergyModel {
    /// Power drawn by one busy core, watts (`MAAS_WATTS_PER_CORE`). Default 3.5 W: the
    /// Cloud Carbon Footprint methodology's figure for a fully used vCPU on AWS
    /// (<https://www.cloudcarbonfootprint.org/docs/methodology>, "max watts" 3.5 per vCPU).
    pub watts_per_core: f64,
    /// Carbon intensity of the electricity, gCO2e per kWh (`MAAS_GRID_GCO2E_PER_KWH`). Default
    /// 475: the world average the IEA reports (Global Energy & CO2 Status Report 2019).
    pub grid_gco2e_per_kwh: f64,
}

impl Default for EnergyModel {
    fn default() -> Self {
        Self { watts_per_core: 3.5, grid_gco2e_per_kwh: 475.0 }
    }
}

impl EnergyModel {
    /// Joules for `cpu` of busy core time.
    pub fn joules(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * self.watts_per_core
    }

    /// Grams of CO2e for `joules`.
    pub fn co2e_grams(&self, joules: f64) -> f64 {
        joules / 3.6e6 * self.grid_gco2e_per_kwh
    }

    /// `usage` with its CO2e, as the usage report shows counters.
    pub fn counters(&self, usage: Usage) -> UsageCounters {
        UsageCounters { co2e_grams: self.co2e_grams(usage.energy_joules), usage }
    }
}

/// Counters as the usage report shows them: the stored [`Usage`] and its CO2e.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageCounters {
    /// Invocations, errors, cold starts, times, energy.
    #[serde(flatten)]
    pub usage: Usage,
    /// Estimated emissions, grams of CO₂ equivalent.
    #[serde(default)]
    pub co2e_grams: f64,
}

/// `GET /v1/tenants/{t}/usage`: totals, storage, and the same counters per function and per day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The tenant.
    pub tenant: String,
    /// Totals over the tenant.
    #[serde(flatten)]
    pub totals: UsageCounters,
    /// Bytes of model and component blobs stored.
    pub storage_bytes: u64,
    /// Per function.
    pub functions: BTreeMap<String, UsageCounters>,
    /// Open Inference Protocol calls, explanations and audits: inference outside the tenant's
    /// functions.
    pub direct_inference: UsageCounters,
    /// Per UTC day.
    pub days: Vec<DayUsage>,
    /// How the server turns CPU time into energy and emissions.
    pub energy_model: EnergyModel,
}

/// One day of a [`UsageReport`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// That day's counters.
    #[serde(flatten)]
    pub counters: UsageCounters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_and_co2e_follow_the_model() {
        let model = EnergyModel { watts_per_core: 10.0, grid_gco2e_per_kwh: 360.0 };
        assert_eq!(model.joules(Duration::from_millis(1500)), 15.0);
        // 3.6 MJ is one kWh.
        assert!((model.co2e_grams(3.6e6) - 360.0).abs() < 1e-9);
    }

    #[test]
    fn report_serializes_flat_and_decodes() {
        let model = EnergyModel::default();
        let counters = model.counters(Usage { invocations: 2, energy_joules: 0.5, ..Usage::default() });
        let report = UsageReport {
            tenant: "acme".into(),
            totals: counters.clone(),
            functions: BTreeMap::from([("f".to_string(), counters.clone())]),
            days: vec![DayUsage { date: "2025-01-01".into(), counters }],
            energy_model: model,
            ..UsageReport::default()
        };
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!((value["invocations"].as_u64(), value["days"][0]["invocations"].as_u64()), (Some(2), Some(2)));
        assert!(value["co2e_grams"].as_f64().unwrap() > 0.0);
        assert_eq!(serde_json::from_value::<UsageReport>(value).unwrap(), report);
    }
}
