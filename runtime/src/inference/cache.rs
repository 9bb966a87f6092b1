//! Loaded models shared across functions, dropped when no warm function holds them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use super::{InferenceError, LoadedModel, PlanAccount, PlanBudget, TensorSpec};
use crate::metrics::Metrics;

/// Identifies one model version of one tenant, by its stored file: a tenant deleted and
/// created again under the same name numbers its versions from 1 again, and must never be
/// served its namesake's models (by a request still in flight, say).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelKey {
    /// Owning tenant.
    pub tenant: String,
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u32,
    /// The id of the version's file in the store: unique, never reused.
    pub blob: u64,
}

impl ModelKey {
    /// `name@version`, the `model` label of its metrics.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl fmt::Display for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.tenant, self.name, self.version)
    }
}

/// The process-wide table of loaded models.
///
/// It holds only weak references: warm functions own their models, so when the last warm
/// function using a model scales to zero the model and its plans are freed. Two functions
/// naming the same model version share one [`LoadedModel`]. The per-shape plans of all its
/// models share one [`PlanBudget`].
pub struct ModelCache {
    loaded: Mutex<HashMap<ModelKey, Weak<LoadedModel>>>,
    budget: Arc<PlanBudget>,
    metrics: Arc<Metrics>,
}

impl Default for ModelCache {
    /// A cache whose per-shape plans are not bounded together, recording in metrics of its own.
    fn default() -> Self {
        Self::new(u64::MAX, Arc::default())
    }
}

impl ModelCache {
    /// A cache whose models' per-shape plans may hold `plan_bytes` together, recording each
    /// model version's figures in `metrics`.
    pub fn new(plan_bytes: u64, metrics: Arc<Metrics>) -> Self {
        Self { loaded: Mutex::default(), budget: PlanBudget::new(plan_bytes), metrics }
    }

    /// Every loaded model, with its key.
    pub fn loaded(&self) -> Vec<(ModelKey, Arc<LoadedModel>)> {
        let loaded = self.loaded.lock().expect("model cache lock");
        loaded.iter().filter_map(|(key, weak)| Some((key.clone(), weak.upgrade()?))).collect()
    }

    /// The loaded model for `key`, loading it with `bytes` and the version's `declared` input
    /// specs (one tensor at most `max_bytes`, see [`LoadedModel::load_within`]) when no warm
    /// function holds it. Runs on a blocking thread: loading parses and optimizes.
    pub fn get_or_load<E: From<InferenceError>>(
        &self,
        key: &ModelKey,
        declared: &[TensorSpec],
        max_bytes: u64,
        bytes: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<LoadedModel>, E> {
        if let Some(model) = self.get(key) {
            return Ok(model);
        }
        let series = self.metrics.model(&key.tenant, &key.label());
        let account = PlanAccount::for_tenant(self.budget.clone(), &key.tenant, max_bytes, series);
        // Loading happens outside the lock; a concurrent load of the same key is wasted work
        // but harmless, and the first one stored wins.
        let model = Arc::new(LoadedModel::load_within(&bytes()?, declared, max_bytes, account)?);
        let mut loaded = self.loaded.lock().expect("model cache lock");
        if let Some(existing) = loaded.get(key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        loaded.retain(|_, weak| weak.strong_count() > 0);
        loaded.insert(key.clone(), Arc::downgrade(&model));
        Ok(model)
    }

    /// The loaded model for `key`, if some warm function holds it.
    pub fn get(&self, key: &ModelKey) -> Option<Arc<LoadedModel>> {
        self.loaded.lock().expect("model cache lock").get(key).and_then(Weak::upgrade)
    }
}
