//! Pure path matching: which resource a path names. No I/O, no auth; the API layer picks the
//! handler by route and method.

/// A resource of the HTTP contract, with the names taken from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`
    Healthz,
    /// `/readyz`
    Readyz,
    /// `/metrics`
    Metrics,
    /// `/v1/tenants`
    Tenants,
    /// `/v1/audit`
    Audit,
    /// `/v1/tenants/{t}`
    Tenant(String),
    /// `/v1/tenants/{t}/keys`
    Keys(String),
    /// `/v1/tenants/{t}/keys/{id}`
    Key(String, String),
    /// `/v1/tenants/{t}/models`
    Models(String),
    /// `/v1/tenants/{t}/models/{m}`
    Model(String, String),
    /// `/v1/tenants/{t}/models/{m}/versions/{v}`
    ModelVersion(String, String, String),
    /// `/v1/tenants/{t}/usage`
    Usage(String),
    /// `/v1/tenants/{t}/models/{m}/card`
    ModelCard(String, String),
    /// `/v1/tenants/{t}/models/{m}[/versions/{v}]/explain` or `/audit`.
    ModelTrust {
        /// Tenant.
        tenant: String,
        /// Model.
        model: String,
        /// Version, when the path names one.
        version: Option<String>,
        /// Explain or audit.
        action: TrustAction,
    },
    /// `/v1/tenants/{t}/components`
    Components(String),
    /// `/v1/tenants/{t}/functions`
    Functions(String),
    /// `/v1/tenants/{t}/functions/{f}`
    Function(String, String),
    /// `/fn/{t}/{f}[/{rest}]`: `rest` keeps its leading `/` (or is `/`).
    Invoke {
        /// Tenant.
        tenant: String,
        /// Function.
        function: String,
        /// The path the function sees.
        rest: String,
    },
    /// `/v2/health/live`
    OipLive,
    /// `/v2/health/ready`
    OipReady,
    /// `/v2`: server metadata.
    OipServer,
    /// `/v2/models/{m}[/versions/{v}][/ready|/infer]`: a model of the key's tenant.
    OipModel {
        /// Model name.
        model: String,
        /// Version, when the path names one.
        version: Option<String>,
        /// What is asked of it.
        action: OipAction,
    },
    /// Anything else.
    NotFound,
}

/// What a model's trust path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustAction {
    /// `.../explain`: attributions of one prediction.
    Explain,
    /// `.../audit`: a fairness audit over a labelled batch.
    Audit,
}

/// What an Open Inference Protocol model path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OipAction {
    /// `GET /v2/models/{m}[/versions/{v}]`: metadata.
    Metadata,
    /// `GET .../ready`: readiness.
    Ready,
    /// `POST .../infer`: inference.
    Infer,
}

impl Route {
    /// Matches a request path (without the query).
    pub fn of(path: &str) -> Route {
        if let Some(after) = path.strip_prefix("/fn/") {
            let mut parts = after.splitn(3, '/');
            let tenant = parts.next().unwrap_or_default();
            let function = parts.next().unwrap_or_default();
            if tenant.is_empty() || function.is_empty() {
                return Route::NotFound;
            }
            let rest = format!("/{}", parts.next().unwrap_or_default());
            return Route::Invoke { tenant: tenant.to_string(), function: function.to_string(), rest };
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let s = |i: usize| segments[i].to_string();
        let trust = |tenant: &str, model: &str, version: Option<&str>, action: &str| Route::ModelTrust {
            tenant: tenant.to_string(),
            model: model.to_string(),
            version: version.map(str::to_string),
            action: if action == "explain" { TrustAction::Explain } else { TrustAction::Audit },
        };
        let oip = |model: &str, version: Option<&str>, action| Route::OipModel {
            model: model.to_string(),
            version: version.map(str::to_string),
            action,
        };
        match segments.as_slice() {
            ["v2"] => Route::OipServer,
            ["v2", "health", "live"] => Route::OipLive,
            ["v2", "health", "ready"] => Route::OipReady,
            ["v2", "models", m] => oip(m, None, OipAction::Metadata),
            ["v2", "models", m, "ready"] => oip(m, None, OipAction::Ready),
            ["v2", "models", m, "infer"] => oip(m, None, OipAction::Infer),
            ["v2", "models", m, "versions", v] => oip(m, Some(v), OipAction::Metadata),
            ["v2", "models", m, "versions", v, "ready"] => oip(m, Some(v), OipAction::Ready),
            ["v2", "models", m, "versions", v, "infer"] => oip(m, Some(v), OipAction::Infer),
            ["healthz"] => Route::Healthz,
            ["readyz"] => Route::Readyz,
            ["metrics"] => Route::Metrics,
            ["v1", "tenants"] => Route::Tenants,
            ["v1", "audit"] => Route::Audit,
            ["v1", "tenants", _] => Route::Tenant(s(2)),
            ["v1", "tenants", _, "keys"] => Route::Keys(s(2)),
            ["v1", "tenants", _, "keys", _] => Route::Key(s(2), s(4)),
            ["v1", "tenants", _, "models"] => Route::Models(s(2)),
            ["v1", "tenants", _, "models", _] => Route::Model(s(2), s(4)),
            ["v1", "tenants", _, "models", _, "versions", _] => Route::ModelVersion(s(2), s(4), s(6)),
            ["v1", "tenants", _, "components"] => Route::Components(s(2)),
            ["v1", "tenants", _, "usage"] => Route::Usage(s(2)),
            ["v1", "tenants", _, "models", _, "card"] => Route::ModelCard(s(2), s(4)),
            ["v1", "tenants", t, "models", m, action @ ("explain" | "audit")] => trust(t, m, None, action),
            ["v1", "tenants", t, "models", m, "versions", v, action @ ("explain" | "audit")] => {
                trust(t, m, Some(v), action)
            }
            ["v1", "tenants", _, "functions"] => Route::Functions(s(2)),
            ["v1", "tenants", _, "functions", _] => Route::Function(s(2), s(4)),
            _ => Route::NotFound,
        }
    }

    /// The tenant the path names, if any (for logs and authorization).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Route::Tenant(t)
            | Route::Keys(t)
            | Route::Key(t, _)
            | Route::Models(t)
            | Route::Model(t, _)
            | Route::ModelVersion(t, _, _)
            | Route::Components(t)
            | Route::Usage(t)
            | Route::ModelCard(t, _)
            | Route::ModelTrust { tenant: t, .. }
            | Route::Functions(t)
            | Route::Function(t, _)
            | Route::Invoke { tenant: t, .. } => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OipAction, Route, TrustAction};

    #[test]
    fn matches_contract_paths() {
        assert_eq!(Route::of("/healthz"), Route::Healthz);
        assert_eq!(Route::of("/v1/tenants/"), Route::Tenants);
        assert_eq!(Route::of("/v1/audit"), Route::Audit);
        assert_eq!(
            Route::of("/v1/tenants/acme/models/mlp/versions/2"),
            Route::ModelVersion("acme".into(), "mlp".into(), "2".into())
        );
        assert_eq!(Route::of("/v1/tenants/acme/functions/f"), Route::Function("acme".into(), "f".into()));
        assert_eq!(
            Route::of("/fn/acme/f/a/b"),
            Route::Invoke { tenant: "acme".into(), function: "f".into(), rest: "/a/b".into() }
        );
        assert_eq!(
            Route::of("/fn/acme/f"),
            Route::Invoke { tenant: "acme".into(), function: "f".into(), rest: "/".into() }
        );
        assert_eq!(Route::of("/fn/acme"), Route::NotFound);
        assert_eq!(Route::of("/v2"), Route::OipServer);
        assert_eq!(Route::of("/v1/tenants/acme/usage"), Route::Usage("acme".into()));
        assert_eq!(Route::of("/v1/tenants/acme/models/m/card"), Route::ModelCard("acme".into(), "m".into()));
        assert_eq!(
            Route::of("/v1/tenants/acme/models/m/versions/2/audit"),
            Route::ModelTrust {
                tenant: "acme".into(),
                model: "m".into(),
                version: Some("2".into()),
                action: TrustAction::Audit
            }
        );
        assert!(matches!(
            Route::of("/v1/tenants/acme/models/m/explain"),
            Route::ModelTrust { action: TrustAction::Explain, version: None, .. }
        ));
        assert_eq!(Route::of("/v2/health/live"), Route::OipLive);
        assert_eq!(
            Route::of("/v2/models/mlp/versions/3/infer"),
            Route::OipModel { model: "mlp".into(), version: Some("3".into()), action: OipAction::Infer }
        );
        assert_eq!(
            Route::of("/v2/models/mlp/ready"),
            Route::OipModel { model: "mlp".into(), version: None, action: OipAction::Ready }
        );
        assert_eq!(Route::of("/v2/models/mlp/versions"), Route::NotFound);
        assert_eq!(Route::of("/v1/tenants/acme/unknown"), Route::NotFound);
        assert_eq!(Route::of("/"), Route::NotFound);
    }
}
