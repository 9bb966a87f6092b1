//! What helps people trust a model: the latest fairness audit of each model version, and the
//! model card the owner writes. Both go away with their model (or version) and tenant.

use maas_types::names::validate_model_name;
use maas_types::trust::MAX_CARD_FIELD;
use maas_types::{FairnessReport, ModelCard, RequireAudit};

use crate::error::{Error, Result};
use crate::model::version_key;
use crate::store::{Batch, T, key};
use crate::{ModelVersion, Registry};

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

    /// Keeps `audit` as the latest audit of a model version.
    pub fn put_model_audit(&self, tenant: &str, name: &str, version: u32, audit: &FairnessReport) -> Result<()> {
        let _w = self.inner.write_lock();
        if self.model_version(tenant, name, Some(version))?.is_none() {
            return Err(Error::NotFound(format!("model {name:?} version {version} not found")));
        }
        let mut batch = Batch::default();
        batch.insert_json(T::ModelAudits, version_key(tenant, name, version), audit);
        self.trees().apply(&batch)
    }

    /// The latest audit of a model version, if any.
    pub fn model_audit(&self, tenant: &str, name: &str, version: u32) -> Result<Option<FairnessReport>> {
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
        let at = audit.audited_at.as_deref().unwrap_or("?");
        match audit.disparate_impact_ratio {
            Some(r) if r >= min => Ok(()),
            other => Err(Error::Conflict(format!(
                "model {label}'s latest audit ({at}) has disparate_impact_ratio {}, statistical_parity_difference {}; \
                 the manifest requires disparate_impact_ratio >= {min}",
                other.map_or("undefined".to_string(), |r| format!("{r:.4}")),
                audit.statistical_parity_difference,
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
