//! `maas invoke …`: calls a function and prints its answer.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::Args;
use http::Method;

use super::output;
use super::{CliError, Ctx, Output};
use maas_sdk::{ApiError, Invocation, Invoke};

/// `invoke` arguments.
#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The tenant.
    tenant: String,
    /// The function.
    function: String,
    /// The path (and query) the function sees, e.g. `/predict?top=3` (default `/`).
    path: Option<String>,
    /// The method (default: POST with a body, GET without).
    #[arg(short = 'X', long)]
    method: Option<Method>,
    /// The body: inline JSON (checked locally; sent with `content-type: application/json`).
    #[arg(long, value_name = "JSON", conflicts_with = "body")]
    json: Option<String>,
    /// The body: a file's bytes, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// A header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Print the status line and the headers before the body.
    #[arg(short = 'i', long)]
    include: bool,
}

impl InvokeArgs {
    pub(crate) async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let (body, is_json) = match (&self.json, &self.body) {
            (Some(text), _) => {
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| CliError::Usage(format!("--json is not valid JSON: {e}")))?;
                (Some(text.clone().into_bytes()), true)
            }
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
                (Some(bytes), false)
            }
            (None, Some(path)) => {
                let bytes =
                    std::fs::read(path).map_err(|e| CliError::Usage(format!("reading {}: {e}", path.display())))?;
                (Some(bytes), false)
            }
            (None, None) => (None, false),
        };
        let method = self.method.clone().unwrap_or(if body.is_some() { Method::POST } else { Method::GET });
        let mut request = Invoke::new(method);
        if let Some(target) = &self.path {
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (target.as_str(), None),
            };
            let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
            request = request.path(path);
            if let Some(query) = query {
                request = request.query(query);
            }
        }
        let mut has_content_type = false;
        for header in &self.headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| CliError::Usage(format!("header {header:?} must be `Name: value`")))?;
            has_content_type |= name.trim().eq_ignore_ascii_case("content-type");
            request = request.header(name.trim(), value.trim());
        }
        if is_json && !has_content_type {
            request = request.header("content-type", "application/json");
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let answer = ctx.client.invoke(&self.tenant, &self.function, request).await?;
        match print(ctx, &answer, self.include) {
            // A reader that went away (`maas invoke … | head`) is not a failure of the call.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(CliError::Failed(format!("writing the answer: {e}")));
            }
            _ => {}
        }
        if answer.is_success() {
            return Ok(());
        }
        let error = ApiError::from_response(answer.status, None, &answer.body);
        Err(CliError::Failed(if error.code == ApiError::UNEXPECTED {
            format!("the function answered HTTP {}", answer.status)
        } else {
            error.to_string()
        }))
    }
}

fn print(ctx: &Ctx, answer: &Invocation, include: bool) -> std::io::Result<()> {
    if ctx.output == Output::Json {
        let headers: serde_json::Map<String, serde_json::Value> = answer
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned().into()))
            .collect();
        let body = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .unwrap_or_else(|_| answer.text().into_owned().into());
        output::json(&serde_json::json!({ "status": answer.status, "headers": headers, "body": body }));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if include {
        let reason = http::StatusCode::from_u16(answer.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        writeln!(out, "HTTP/1.1 {} {reason}", answer.status)?;
        for (name, value) in &answer.headers {
            writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
        }
        writeln!(out)?;
    } else if !answer.is_success()
        && ApiError::from_response(answer.status, None, &answer.body).code != ApiError::UNEXPECTED
    {
        // The platform's error JSON: stderr tells it; stdout stays empty.
        return Ok(());
    }
    out.write_all(&answer.body)?;
    // End text with a newline on a terminal, so the prompt does not follow it on the same line.
    if std::io::stdout().is_terminal() && !answer.body.ends_with(b"\n") && std::str::from_utf8(&answer.body).is_ok() {
        writeln!(out)?;
    }
    out.flush()
}
