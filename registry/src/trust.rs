//! What helps people trust a model: the latest fairness audit of each model version, and the
//! model card the owner writes. Both go away with their model (or version) and tenant.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::function::RequireAudit;
use crate::model::version_key;
use crate::names::validate_model_name;
use crate::store::{Batch, T, key};
use crate::{ModelVersion, Registry};

/// Longest text of one card field, bytes.
pub const MAX_CARD_FIELD: usize = 64 << 10;

/// A model card as its owner writes it (`PUT .../models/{m}/card`); every field is optional text.
/// The runtime adds generated facts (versions, digests, signatures, latest audits) when showing it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelCard {
    /// What the model does.
    pub description: Option<String>,
    /// What it is meant to be used for.
    pub intended_use: Option<String>,
    /// What it must not be used for.
    pub out_of_scope_use: Option<String>,
    /// Known limitations.
    pub limitations: Option<String>,
    /// What it was trained on.
    pub training_data: Option<String>,
    /// How it was evaluated, with figures.
    pub evaluation: Option<String>,
    /// Risks, affected groups, mitigations.
    pub ethical_considerations: Option<String>,
    /// Licence of the model.
    pub license: Option<String>,
    /// Who to ask.
    pub contact: Option<String>,
}

impl ModelCard {
    /// The fields as `(name, value)` in display order.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 9] {
        [
            ("description", self.description.as_deref()),
            ("intended_use", self.intended_use.as_deref()),
            ("out_of_scope_use", self.out_of_scope_use.as_deref()),
            ("limitations", self.limitations.as_deref()),
            ("training_data", self.training_data.as_deref()),
            ("evaluation", self.evaluation.as_deref()),
            ("ethical_considerations", self.ethical_considerations.as_deref()),
            ("license", self.license.as_deref()),
            ("contact", self.contact.as_deref()),
        ]
    }
}

impl Registry {
    /// Stores `card` for model `name` (which must exist), replacing the previous one.
    pub fn put_card(&self, tenant: &str, name: &str, card: &ModelCard) -> Result<()> {
        validate_model_name(name)?;
        if let Some((field, _)) = card.fields().into_iter().find(|(_, v)| v.is_some_and(|v| v.len() > MAX_CARD_FIELD)) {
            return Err(Error::InvalidRequest(format!("card.{field} is longer than {MAX_CARD_FIELD} bytes")));
        }
        let _w = self.inner.write_lock();
        self.require_model(tenant, name)?;
        let mut batch = Batch::default();
        batch.insert_json(T::Cards, key(&[tenant.as_bytes(), name.as_bytes()]), card);
        self.trees().apply(&batch)
    }

    /// The card of model `name`, if its owner wrote one.
    pub fn card(&self, tenant: &str, name: &str) -> Result<Option<ModelCard>> {
        self.trees().get_json(T::Cards, &key(&[tenant.as_bytes(), name.as_bytes()]))
    }

    /// Keeps `audit` (the runtime's JSON report) as the latest audit of a model version.
    pub fn put_model_audit(&self, tenant: &str, name: &str, version: u32, audit: &serde_json::Value) -> Result<()> {
        let _w = self.inner.write_lock();
        if self.model_version(tenant, name, Some(version))?.is_none() {
            return Err(Error::NotFound(format!("model {name:?} version {version} not found")));
        }
        let mut batch = Batch::default();
        batch.insert_json(T::ModelAudits, version_key(tenant, name, version), audit);
        self.trees().apply(&batch)
    }

    /// The latest audit of a model version, if any.
    pub fn model_audit(&self, tenant: &str, name: &str, version: u32) -> Result<Option<serde_json::Value>> {
        self.trees().get_json(T::ModelAudits, &version_key(tenant, name, version))
    }

    /// [`Error::Conflict`], with the figures, unless `version`'s latest audit meets `gate`.
    pub(crate) fn check_audit_gate(&self, tenant: &str, version: &ModelVersion, gate: &RequireAudit) -> Result<()> {
        let label = format!("{}@{}", version.name, version.version);
        let min = gate.min_disparate_impact;
        let Some(audit) = self.model_audit(tenant, &version.name, version.version)? else {
            return Err(Error::Conflict(format!(
                "model {label} has no fairness audit; the manifest requires disparate_impact_ratio >= {min}"
            )));
        };
        let ratio = audit.get("disparate_impact_ratio").and_then(serde_json::Value::as_f64);
        let at = audit.get("audited_at").and_then(serde_json::Value::as_str).unwrap_or("?");
        match ratio {
            Some(r) if r >= min => Ok(()),
            other => Err(Error::Conflict(format!(
                "model {label}'s latest audit ({at}) has disparate_impact_ratio {}, statistical_parity_difference {}; \
                 the manifest requires disparate_impact_ratio >= {min}",
                other.map_or("undefined".to_string(), |r| format!("{r:.4}")),
                audit.get("statistical_parity_difference").map_or("?".to_string(), |v| v.to_string()),
            ))),
        }
    }

    fn require_model(&self, tenant: &str, name: &str) -> Result<()> {
        self.require_tenant(tenant)?;
        match self.model_version(tenant, name, None)? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("model {name:?} not found"))),
        }
    }

    /// Removals that go with deleting `doomed` versions of a model (all of them when `all`).
    pub(crate) fn trust_removals(batch: &mut Batch, tenant: &str, name: &str, doomed: &[ModelVersion], all: bool) {
        for m in doomed {
            batch.remove(T::ModelAudits, version_key(tenant, name, m.version));
        }
        if all {
            batch.remove(T::Cards, key(&[tenant.as_bytes(), name.as_bytes()]));
        }
    }
}
