//! `maas models …` (owner key).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{self, Table, out};
use super::{CliError, Ctx, Output};
use maas_sdk::{ModelInfo, Upload};

/// Model subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Upload an ONNX file as the model's next version (streamed, with a progress bar on a
    /// terminal; the sha256 is checked against the server's).
    Upload {
        /// The tenant.
        tenant: String,
        /// The model name: lowercase letters, digits, `.`, `_` and `-`.
        name: String,
        /// The ONNX file, or `-` for stdin.
        file: PathBuf,
        /// Do not draw the progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Declare an input's datatype and dimensions, `name:DATATYPE:d1,d2,…` with `-1` for a
        /// free dimension (e.g. `x:FP32:1,3,-1,-1`); repeat for more inputs.
        #[arg(long = "input", value_name = "SPEC")]
        inputs: Vec<maas_sdk::types::TensorSpec>,
    },
    /// List models with their versions.
    List {
        /// The tenant.
        tenant: String,
    },
    /// Show a model version's digest, size and signature (the latest without --version).
    Show {
        /// The tenant.
        tenant: String,
        /// The model.
        name: String,
        /// The version.
        #[arg(long)]
        version: Option<u32>,
    },
    /// List a model's versions.
    Versions {
        /// The tenant.
        tenant: String,
        /// The model.
        name: String,
    },
    /// Delete a model with all its versions, or one version.
    Delete {
        /// The tenant.
        tenant: String,
        /// The model.
        name: String,
        /// Only this version.
        #[arg(long)]
        version: Option<u32>,
    },
}

impl ModelsCommand {
    pub(crate) async fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        let client = &ctx.client;
        match self {
            ModelsCommand::Upload { tenant, name, file, no_progress, inputs } => {
                let upload = if file.as_os_str() == "-" {
                    Upload::reader(tokio::io::stdin(), None)
                } else {
                    Upload::file(&file).await?
                };
                let bar = if no_progress { ProgressBar::hidden() } else { progress_bar(upload.len()) };
                let ticker = bar.clone();
                let upload = upload.on_progress(move |sent, _total| ticker.set_position(sent));
                let result = client.upload_model_with(&tenant, &name, upload, &inputs).await;
                bar.finish_and_clear();
                let model = result?;
                match ctx.output {
                    Output::Json => output::json(&model),
                    Output::Text => {
                        out!(
                            "uploaded {}/{} version {} ({}, sha256 {})",
                            tenant,
                            model.name,
                            model.version,
                            output::bytes(model.size_bytes),
                            model.sha256
                        );
                        out!("plans: {}", plans(&model));
                        signature(&model);
                    }
                }
            }
            ModelsCommand::List { tenant } => {
                let models = client.models(&tenant).await?;
                if ctx.output == Output::Json {
                    output::json(&serde_json::json!({ "models": models }));
                    return Ok(());
                }
                let mut table = Table::new(["NAME", "LATEST", "VERSIONS", "SIZE", "SHA256"]);
                for m in &models {
                    let latest = m.versions.iter().find(|v| v.version == m.latest_version);
                    table.row([
                        m.name.clone(),
                        m.latest_version.to_string(),
                        m.versions.len().to_string(),
                        latest.map_or_else(String::new, |v| output::bytes(v.size_bytes)),
                        latest.map_or_else(String::new, |v| output::short_digest(&v.sha256)),
                    ]);
                }
                table.print();
            }
            ModelsCommand::Show { tenant, name, version } => {
                let model = client.model(&tenant, &name, version).await?;
                match ctx.output {
                    Output::Json => output::json(&model),
                    Output::Text => {
                        output::fields(&[
                            ("name", model.name.clone()),
                            ("version", model.version.to_string()),
                            ("size", output::bytes(model.size_bytes)),
                            ("sha256", model.sha256.clone()),
                            ("created", model.created_at.clone()),
                            ("plans", plans(&model).into()),
                        ]);
                        out!("");
                        signature(&model);
                    }
                }
            }
            ModelsCommand::Versions { tenant, name } => {
                // The model's own route answers `404 not_found` for a missing model.
                client.model(&tenant, &name, None).await?;
                let models = client.models(&tenant).await?;
                let versions = models.into_iter().find(|m| m.name == name).map(|m| m.versions).unwrap_or_default();
                if ctx.output == Output::Json {
                    output::json(&serde_json::json!({ "name": name, "versions": versions }));
                    return Ok(());
                }
                let mut table = Table::new(["VERSION", "SIZE", "SHA256", "CREATED"]);
                for v in &versions {
                    table.row([
                        v.version.to_string(),
                        output::bytes(v.size_bytes),
                        v.sha256.clone(),
                        v.created_at.clone(),
                    ]);
                }
                table.print();
            }
            ModelsCommand::Delete { tenant, name, version } => {
                client.delete_model(&tenant, &name, version).await?;
                let what = version.map_or_else(|| name.clone(), |v| format!("{name}@{v}"));
                match ctx.output {
                    Output::Json => output::json(&serde_json::json!({ "deleted": what, "tenant": tenant })),
                    Output::Text => out!("deleted model {what} of tenant {tenant}"),
                }
            }
        }
        Ok(())
    }
}

/// The inputs and outputs as a table.
/// How the server plans the model: once, or per request shape.
fn plans(model: &ModelInfo) -> &'static str {
    if model.per_request_shapes {
        "per request shape (tract types it only with concrete shapes)"
    } else {
        "one for all shapes"
    }
}

fn signature(model: &ModelInfo) {
    let mut table = Table::new(["TENSOR", "NAME", "DATATYPE", "SHAPE"]);
    let declared = ("declared", &model.declared_inputs);
    for (side, specs) in [("input", &model.inputs), ("output", &model.outputs), declared] {
        for s in specs {
            table.row([side.into(), s.name.clone(), s.datatype.to_string(), output::shape(&s.shape)]);
        }
    }
    table.print();
}

/// A bar when the size is known, a byte counter otherwise; drawn on stderr, and only when it
/// is a terminal.
fn progress_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("uploading [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("uploading {spinner} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
