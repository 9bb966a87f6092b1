//! Model cards: what the owner writes (`PUT .../models/{m}/card`) merged with facts the
//! platform knows (versions, digests, signatures, latest fairness audits), as JSON, Markdown
//! (`?format=md`) or an HTML page (`?format=html`).

use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use maas_registry::ModelCard;
use serde_json::{Value, json};

use super::body::RequestBody;
use super::{App, Body, json_response, models::version_view, parse_json, read_body, require_tenant};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Cards are text; 9 fields of at most 64 KiB.
const CARD_LIMIT: u64 = 1 << 20;

pub(super) async fn put(
    app: &Arc<App>,
    p: &Principal,
    tenant: &str,
    model: &str,
    req: Request<RequestBody>,
) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let card: ModelCard = parse_json(&read_body(req, CARD_LIMIT).await?)?;
    app.registry.put_card(tenant, model, &card)?;
    app.audit(p, "model.card", Some(tenant), model, json!({}));
    Ok(json_response(StatusCode::OK, &document(app, tenant, model, card)?))
}

pub(super) fn get<B>(app: &Arc<App>, p: &Principal, tenant: &str, model: &str, req: &Request<B>) -> ApiResult {
    p.require_owner(tenant)?;
    require_tenant(app, tenant)?;
    let card = app.registry.card(tenant, model)?.unwrap_or_default();
    let doc = document(app, tenant, model, card)?;
    let format = req.uri().query().unwrap_or_default().split('&').find_map(|kv| kv.strip_prefix("format="));
    match format {
        None | Some("json") => Ok(json_response(StatusCode::OK, &doc)),
        Some("md" | "markdown") => Ok(text(markdown(&doc), "text/markdown; charset=utf-8")),
        Some("html") => Ok(text(html(&markdown_blocks(&doc)), "text/html; charset=utf-8")),
        Some(other) => Err(ApiError::invalid_request(format!("format {other:?} is not json, md or html"))),
    }
}

/// The card and the generated facts: `{"name", "card": {...}, "versions": [{..., "audit"}]}`.
fn document(app: &App, tenant: &str, model: &str, card: ModelCard) -> Result<Value, ApiError> {
    let summary = app
        .registry
        .models(tenant)?
        .into_iter()
        .find(|m| m.name == model)
        .ok_or_else(|| ApiError::not_found(format!("no model {model:?}")))?;
    let versions = summary
        .versions
        .iter()
        .map(|v| {
            let mut view = version_view(v);
            view["audit"] = app.registry.model_audit(tenant, model, v.version)?.unwrap_or(Value::Null);
            Ok(view)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(json!({
        "name": model,
        "tenant": tenant,
        "latest_version": summary.latest_version,
        "card": card,
        "versions": versions,
    }))
}

fn text(body: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn title(field: &str) -> String {
    let words = field.replace('_', " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The document as (heading, paragraphs) blocks, shared by Markdown and HTML.
fn markdown_blocks(doc: &Value) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let card: ModelCard = serde_json::from_value(doc["card"].clone()).unwrap_or_default();
    for (field, value) in card.fields() {
        let body = value.map_or_else(|| "Not provided.".to_string(), str::to_string);
        blocks.push((title(field), vec![body]));
    }
    let mut facts = Vec::new();
    for v in doc["versions"].as_array().into_iter().flatten() {
        let tensors = |key: &str| {
            v[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "{} {} {}",
                        t["name"].as_str().unwrap_or("?"),
                        t["datatype"].as_str().unwrap_or("?"),
                        t["shape"]
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut line = format!(
            "Version {}: sha256 {}, {} bytes, uploaded {}; inputs: {}; outputs: {}.",
            v["version"],
            v["sha256"].as_str().unwrap_or("?"),
            v["size_bytes"],
            v["created_at"].as_str().unwrap_or("?"),
            tensors("inputs"),
            tensors("outputs"),
        );
        let audit = &v["audit"];
        if audit.is_object() {
            let _ = write!(
                line,
                " Latest fairness audit ({}): disparate impact ratio {}, statistical parity difference {}, \
                 four-fifths rule {}.",
                audit["audited_at"].as_str().unwrap_or("?"),
                audit["disparate_impact_ratio"],
                audit["statistical_parity_difference"],
                if audit["passes_four_fifths_rule"] == json!(true) { "passed" } else { "failed" },
            );
        } else {
            line.push_str(" No fairness audit.");
        }
        facts.push(line);
    }
    blocks.push(("Versions (generated by maas)".to_string(), facts));
    blocks
}

fn markdown(doc: &Value) -> String {
    let mut out = format!("# Model card: {}\n\n", doc["name"].as_str().unwrap_or("?"));
    for (heading, paragraphs) in markdown_blocks(doc) {
        let _ = write!(out, "## {heading}\n\n");
        for p in paragraphs {
            let _ = write!(out, "{p}\n\n");
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn html(blocks: &[(String, Vec<String>)]) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model card</title>\
         <style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.5}</style></head><body>\n\
         <h1>Model card</h1>\n",
    );
    for (heading, paragraphs) in blocks {
        let _ = writeln!(out, "<h2>{}</h2>", escape(heading));
        for p in paragraphs {
            let _ = writeln!(out, "<p>{}</p>", escape(p));
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_owners_write() {
        let page = html(&[("Description".into(), vec!["<script>alert('x')</script> & \"more\"".into()])]);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"));
    }

    #[test]
    fn markdown_lists_every_field_and_the_versions() {
        let doc = json!({
            "name": "m",
            "card": { "description": "Scores loans." },
            "versions": [{ "version": 1, "sha256": "ab", "size_bytes": 3, "created_at": "t",
                           "inputs": [{ "name": "x", "datatype": "FP32", "shape": [1, 4] }], "outputs": [],
                           "audit": { "audited_at": "t2", "disparate_impact_ratio": 0.9,
                                      "statistical_parity_difference": -0.05, "passes_four_fifths_rule": true } }],
        });
        let md = markdown(&doc);
        assert!(md.starts_with("# Model card: m\n"));
        assert!(md.contains("## Description\n\nScores loans."));
        assert!(md.contains("## Intended use\n\nNot provided."));
        assert!(md.contains("Version 1: sha256 ab"));
        assert!(md.contains("x FP32 [1,4]"));
        assert!(md.contains("disparate impact ratio 0.9") && md.contains("four-fifths rule passed"));
    }
}
