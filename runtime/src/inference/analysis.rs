//! The analysis of an uploaded model, under a time and a memory budget.
//!
//! Parsing, typing and optimizing a model happen inside tract and cannot be interrupted. The
//! bounds (`bounds`) refuse the known ways a small file asks for a lot, but only a process of
//! its own can be stopped whatever the model does. So when the server has an [`Analyzer`] (the
//! `maas` binary gives itself: `maas analyze-model`), each upload is analysed in a child
//! process whose address space is limited (`RLIMIT_AS`) and which is killed once the time
//! budget has passed; either way the upload is refused with `400 invalid_model`, and the
//! server itself never ran the model's analysis. Without one (a server embedded in a test,
//! say), the analysis runs in process, under the bounds alone.
//!
//! The child reads the model on stdin and writes one JSON line: `{"analysis": …}` or
//! `{"invalid_model": "<why>"}`. The declared input specs travel as `--input` arguments.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use maas_types::ModelAnalysis;

use super::{InferenceError, LoadedModel, PlanAccount, TensorSpec};

/// Where and how uploads are analysed out of process.
#[derive(Clone, Debug)]
pub struct Analyzer {
    /// The executable; it is run as `<program> analyze-model --max-tensor-bytes N [--input SPEC]…`.
    pub program: PathBuf,
    /// How long an analysis may take.
    pub timeout: Duration,
}

/// Address space the child may use beyond twice the largest tensor allowed: its code, tract,
/// the model's bytes and the allocator's arenas.
const BASE_ADDRESS_SPACE: u64 = 1 << 30;

/// What the child answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Analysis(ModelAnalysis),
    InvalidModel(String),
}

/// Analyses `bytes` as tract would serve them with the owner's `declared` input specs, every
/// tensor at most `max_tensor_bytes`: in a child process under `analyzer`'s budget when there
/// is one, else in process.
pub fn analyze(
    bytes: &[u8],
    declared: &[TensorSpec],
    max_tensor_bytes: u64,
    analyzer: Option<&Analyzer>,
) -> Result<ModelAnalysis, InferenceError> {
    let Some(analyzer) = analyzer else {
        return analyze_here(bytes, declared, max_tensor_bytes);
    };
    let failed = |why: String| InferenceError::Failed(format!("the model analysis could not run: {why}"));
    let mut child = Command::new(&analyzer.program)
        .args(["analyze-model", "--max-tensor-bytes", &max_tensor_bytes.to_string()])
        // `--input=SPEC`: a name starting with `-` must not read as a flag.
        .args(declared.iter().map(|spec| format!("--input={spec}")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("starting {}: {e}", analyzer.program.display())))?;
    let (mut stdin, mut stdout) = (child.stdin.take(), child.stdout.take());
    let deadline = Instant::now() + analyzer.timeout;
    let (status, output) = std::thread::scope(|s| {
        // The writer fails with a broken pipe if the child dies first; that is fine.
        s.spawn(move || {
            if let Some(mut stdin) = stdin.take() {
                let _ = stdin.write_all(bytes);
            }
        });
        let reader = s.spawn(move || {
            let mut output = String::new();
            if let Some(stdout) = stdout.as_mut() {
                let _ = stdout.read_to_string(&mut output);
            }
            output
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break None,
            }
        };
        (status, reader.join().unwrap_or_default())
    });
    let Some(status) = status else {
        return Err(InferenceError::InvalidModel(format!(
            "analysing the model took longer than its budget of {:?}",
            analyzer.timeout
        )));
    };
    match serde_json::from_str::<Verdict>(output.trim()) {
        Ok(Verdict::Analysis(analysis)) => Ok(analysis),
        Ok(Verdict::InvalidModel(why)) => Err(InferenceError::InvalidModel(why)),
        Err(_) => Err(InferenceError::InvalidModel(format!(
            "analysing the model ran out of its memory budget of {} MiB or crashed ({status})",
            address_space(max_tensor_bytes) >> 20
        ))),
    }
}

/// The analysis itself: the model loaded as it will be served, and run once on zeros when
/// the owner declared inputs whose every dimension is known.
fn analyze_here(bytes: &[u8], declared: &[TensorSpec], max_tensor_bytes: u64) -> Result<ModelAnalysis, InferenceError> {
    let model = LoadedModel::load_within(bytes, declared, max_tensor_bytes, PlanAccount::unbounded())?;
    if !declared.is_empty() {
        model.check_runs()?;
    }
    Ok(model.analysis(declared))
}

/// The address space a child analysing a model with tensors up to `max_tensor_bytes` gets.
fn address_space(max_tensor_bytes: u64) -> u64 {
    max_tensor_bytes.saturating_mul(2).saturating_add(BASE_ADDRESS_SPACE)
}

/// The child's side (`maas analyze-model`): limits its own address space, reads a model on
/// stdin, analyses it and writes the verdict on stdout. Returns the exit code.
pub fn analyze_stdin(max_tensor_bytes: u64, declared: &[TensorSpec]) -> i32 {
    let limit = address_space(max_tensor_bytes);
    let rlimit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
    // SAFETY: setrlimit reads the struct it is given and changes only this process's limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) } != 0 {
        return 2;
    }
    let mut bytes = Vec::new();
    if std::io::stdin().read_to_end(&mut bytes).is_err() {
        return 2;
    }
    let verdict = match analyze_here(&bytes, declared, max_tensor_bytes) {
        Ok(analysis) => Verdict::Analysis(analysis),
        Err(InferenceError::InvalidModel(why) | InferenceError::InvalidInput(why) | InferenceError::Failed(why)) => {
            Verdict::InvalidModel(why)
        }
        Err(other) => Verdict::InvalidModel(other.to_string()),
    };
    match serde_json::to_string(&verdict) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(_) => 2,
    }
}
