//! Runs the ONNX backend *node* tests against tract alone and against maas over HTTP.
//!
//! ```text
//! node-check (--data DIR | --python PATH) [--filter TEXT]... [--expected FILE] [--write-expected]
//! ```
//!
//! The `onnx` Python wheel ships one directory per operator test,
//! `onnx/backend/test/data/node/<test>/`, holding `model.onnx` and `test_data_set_0/input_<i>.pb`,
//! `output_<i>.pb` (each a serialized `TensorProto`). `--data` names that `node` directory (or a
//! `site-packages` or `onnx` package directory above it); `--python` asks an interpreter where
//! its `onnx` package is instead. Each selected test runs twice:
//!
//! 1. **tract in process**: the model parsed by `tract_onnx`, each input fact set to the shipped
//!    input's datatype and shape, optimized, run, the outputs compared with the shipped ones;
//! 2. **maas over HTTP**: one [`TestServer`] on loopback, one tenant `acme`; for each test the
//!    model is uploaded (`PUT /v1/tenants/acme/models/<name>`), a `builtin:tensor` function
//!    deployed for it, and one Open Inference Protocol request made with the shipped inputs in
//!    the binary tensor data extension, outputs asked for in binary too (so NaN and infinities
//!    survive), then compared the same way.
//!
//! Values match within a relative tolerance of 1e-4 (with an absolute floor of 1e-5 near 0),
//! NaN matches NaN, integers and booleans must be equal, and shapes and datatypes must be the
//! same. A test whose graph inputs or outputs are not tensors of a datatype maas serves (BOOL,
//! UINT8..64, INT8..64, FP16, FP32, FP64) — strings, bfloat16, float8, int4, complex, sequences,
//! maps, optionals — is `skipped`, with its reason, not failed.
//!
//! `--filter` (repeatable, or comma-separated) selects the tests whose name contains one of the
//! texts (`test_conv` selects every test whose name starts so). The summary gives, for each loop,
//! `N passed, M failed, K skipped`, and lists the tests that fail over HTTP but pass in tract
//! alone (maas's own bugs).
//!
//! `tests/node-check/expected.txt` holds one line per test: `<test> pass`, `<test> fail <cause>`
//! or `<test> skip <reason>`. `--write-expected` rewrites the lines of the selected tests from
//! the HTTP results (the others are kept). Without it, the exit code is non-zero when a test the
//! file lists as `pass` fails over HTTP; tests that now pass but are listed as `fail` are printed
//! as a notice only, and tests the filter did not select are ignored.
//!
//! `.ci/run` runs it over the node tests of `onnx==1.17.0`, installed in a virtual environment:
//!
//! ```text
//! python3 -m venv --clear target/node-venv
//! target/node-venv/bin/pip install --quiet --disable-pip-version-check onnx==1.17.0
//! target/debug/node-check --python target/node-venv/bin/python
//! ```
//!
//! Measured on the 2-core machine (debug profile, dependencies optimized), onnx 1.17.0, all 1288
//! tests, so no default filter (the whole run takes 10–25 s, most of it the HTTP loop):
//!
//! - tract in process: 736 passed, 425 failed, 127 skipped, in 0.4 s;
//! - maas over HTTP: 958 passed, 203 failed, 127 skipped, in 7–25 s (7 s of CPU; the rest is
//!   waiting, mostly on the disk syncs of the uploads, and varies with the machine's load).
//!
//! maas passes more than tract alone: it freezes small parameter inputs (a Reduce's axes, a
//! Reshape's shape, a Resize's scales) as constants when a model cannot be typed otherwise,
//! which this tract loop, typing inputs by datatype and shape only, does not. No test fails
//! over HTTP that passes in tract alone (this loop reads tract's Shape and Size outputs,
//! symbolic dimensions, as INT64, as maas serves them).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, anyhow, bail, ensure};
use maas_tests::{Client, TestServer};
use serde_json::{Value, json};
use tract_onnx::pb::{self, tensor_proto::DataType};
use tract_onnx::prelude::*;

/// The expectation file, relative to this crate.
const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/node-check/expected.txt");

/// Relative tolerance of float comparisons.
const RELATIVE_TOLERANCE: f64 = 1e-4;

/// Absolute tolerance of float comparisons near 0.
const ABSOLUTE_TOLERANCE: f64 = 1e-5;

/// How many characters of an error a failure line shows.
const REASON_CHARS: usize = 200;

/// How many characters of a failure's cause the expectation file keeps.
const CAUSE_CHARS: usize = 160;

const USAGE: &str =
    "usage: node-check (--data DIR | --python PATH) [--filter TEXT]... [--expected FILE] [--write-expected]";

/// The command line.
struct Args {
    /// The `node` directory of the onnx package's backend test data.
    data: PathBuf,
    /// Texts a selected test's name contains (all tests when empty).
    filters: Vec<String>,
    /// The expectation file.
    expected: PathBuf,
    /// Rewrite the expectation file instead of checking against it.
    write_expected: bool,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("node-check: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    quiet_caught_panics();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("node-check: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line; the data directory is resolved to the `node` directory.
fn parse_args() -> anyhow::Result<Args> {
    let mut data = None;
    let mut python = None;
    let mut filters = Vec::new();
    let mut expected = PathBuf::from(EXPECTED);
    let mut write_expected = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--python" => python = Some(value()?),
            "--filter" => filters.extend(value()?.split(',').filter(|f| !f.is_empty()).map(String::from)),
            "--expected" => expected = PathBuf::from(value()?),
            "--write-expected" => write_expected = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let data = match (data, python) {
        (Some(dir), None) => find_node_dir(&dir)?,
        (None, Some(python)) => find_node_dir(&onnx_package_dir(&python)?)?,
        _ => bail!("give one of --data DIR and --python PATH"),
    };
    Ok(Args { data, filters, expected, write_expected })
}

/// The directory of the `onnx` package `python` would import (found, not imported: the test
/// data needs neither numpy nor protobuf).
fn onnx_package_dir(python: &str) -> anyhow::Result<PathBuf> {
    let script = "import importlib.util as u; print(u.find_spec('onnx').submodule_search_locations[0])";
    let output = Command::new(python).args(["-c", script]).output().with_context(|| format!("running {python}"))?;
    ensure!(
        output.status.success(),
        "{python} finds no onnx package: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

/// The `node` test directory at or under `dir` (the `node` directory itself, the `onnx` package,
/// or the `site-packages` holding it).
fn find_node_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let tail = Path::new("backend/test/data/node");
    for candidate in [dir.to_path_buf(), dir.join(tail), dir.join("onnx").join(tail)] {
        if candidate.join("test_abs/model.onnx").is_file() {
            return Ok(candidate);
        }
    }
    bail!("no ONNX node tests (test_abs/model.onnx) in {} or its onnx/backend/test/data/node", dir.display())
}

thread_local! {
    /// Whether this thread is inside [`catching`], whose panics become errors.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Installs a panic hook that stays silent for panics [`catching`] turns into errors.
fn quiet_caught_panics() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !CATCHING.with(Cell::get) {
            default(info);
        }
    }));
}

/// Runs `f`, a panic in it (tract's, or the test client's on a broken connection) becoming an error.
fn catching<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    CATCHING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(false));
    result.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Err(anyhow!("panicked: {message}"))
    })
}

/// One node test, loaded.
struct Case {
    /// The test's directory name, `test_…`.
    name: String,
    /// `model.onnx`, as uploaded.
    model: Vec<u8>,
    /// `model.onnx`, decoded.
    proto: pb::ModelProto,
    /// The shipped inputs, with the graph input names they feed.
    inputs: Vec<(String, Tensor)>,
    /// The shipped outputs, with the graph output names they are for.
    outputs: Vec<(String, Tensor)>,
    /// Operators of the graph (or its subgraphs) that tract has no parser for.
    unsupported: Vec<String>,
}

/// A test as found on disk: runnable, or skipped with a reason.
enum Loaded {
    /// Every input and output is a tensor of a datatype maas serves.
    Run(Box<Case>),
    /// Some input or output is not (the reason says which).
    Skip(String),
}

/// The result of one test in one loop.
#[derive(Clone, Debug)]
enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// One loop's results, by test name.
type Results = BTreeMap<String, Outcome>;

/// Loads the tests, runs both loops, prints the summary and checks (or writes) the expectations.
fn run(args: &Args) -> anyhow::Result<bool> {
    ensure!(
        cfg!(target_endian = "little"),
        "the binary tensor data extension is little-endian: run on a little-endian host"
    );
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&args.data).with_context(|| format!("listing {}", args.data.display()))? {
        let entry = entry.with_context(|| format!("listing {}", args.data.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let selected = args.filters.is_empty() || args.filters.iter().any(|f| name.contains(f.as_str()));
        if name.starts_with("test_") && selected && entry.path().join("model.onnx").is_file() {
            names.push(name);
        }
    }
    names.sort();
    ensure!(!names.is_empty(), "no test in {} matches the filter {:?}", args.data.display(), args.filters);
    println!("node-check: {} tests from {}", names.len(), args.data.display());
    // Read before the runs, so that a missing or malformed file fails fast.
    let expected = if args.write_expected { None } else { Some(read_expected(&args.expected)?) };

    let onnx = tract_onnx::onnx();
    let started = Instant::now();
    let mut cases = Vec::new();
    let mut load_results = Results::new();
    for name in &names {
        match load_case(&onnx, &args.data.join(name), name) {
            Ok(Loaded::Run(case)) => cases.push(*case),
            Ok(Loaded::Skip(reason)) => {
                load_results.insert(name.clone(), Outcome::Skip(reason));
            }
            Err(e) => {
                load_results.insert(name.clone(), Outcome::Fail(one_line(&format!("loading the test: {e:#}"))));
            }
        }
    }
    println!("loaded in {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let mut tract_results = load_results.clone();
    for case in &cases {
        let outcome = match catching(|| run_tract(&onnx, case)) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(one_line(&format!("{e:#}"))),
        };
        if let Outcome::Fail(reason) = &outcome {
            println!("FAIL tract {}: {}", case.name, cut(reason, REASON_CHARS));
        }
        tract_results.insert(case.name.clone(), outcome);
    }
    let tract_time = started.elapsed();

    let started = Instant::now();
    let mut http_results = load_results.clone();
    run_http(&cases, &mut http_results)?;
    let http_time = started.elapsed();

    println!();
    print_skips(&http_results);
    let maas_bugs: Vec<(&String, &String)> = http_results
        .iter()
        .filter_map(|(name, outcome)| match (outcome, tract_results.get(name)) {
            (Outcome::Fail(reason), Some(Outcome::Pass)) => Some((name, reason)),
            _ => None,
        })
        .collect();
    if !maas_bugs.is_empty() {
        println!("fail over HTTP but pass in tract alone ({}):", maas_bugs.len());
        for (name, reason) in &maas_bugs {
            println!("  {name}: {}", cut(reason, REASON_CHARS));
        }
    }
    println!("tract in process: {} in {:.1} s", counts(&tract_results), tract_time.as_secs_f64());
    println!("maas over HTTP: {} in {:.1} s", counts(&http_results), http_time.as_secs_f64());

    let causes: HashMap<&str, String> = cases
        .iter()
        .filter(|case| !case.unsupported.is_empty())
        .map(|case| {
            let s = if case.unsupported.len() > 1 { "s" } else { "" };
            (case.name.as_str(), format!("operator{s} {} not supported by tract", case.unsupported.join(", ")))
        })
        .collect();
    match expected {
        Some(expected) => Ok(check_expected(&args.expected, &expected, &http_results)),
        None => {
            write_expected(&args.expected, &http_results, &causes)?;
            println!("wrote {}", args.expected.display());
            Ok(true)
        }
    }
}

/// Loads the test in `dir`: its model and the inputs and outputs of `test_data_set_0`.
fn load_case(onnx: &tract_onnx::Onnx, dir: &Path, name: &str) -> anyhow::Result<Loaded> {
    let path = dir.join("model.onnx");
    let model = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let proto = onnx.proto_model_for_read(&mut &*model).with_context(|| format!("decoding {}", path.display()))?;
    let graph = proto.graph.as_ref().context("model.onnx has no graph")?;
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let graph_inputs: Vec<&pb::ValueInfoProto> =
        graph.input.iter().filter(|i| !initialized.contains(i.name.as_str())).collect();
    let graph_outputs: Vec<&pb::ValueInfoProto> = graph.output.iter().collect();
    for (role, values) in [("input", &graph_inputs), ("output", &graph_outputs)] {
        for value in values {
            if let Some(reason) = unservable(value) {
                return Ok(Loaded::Skip(format!("{role} {} {reason}", value.name)));
            }
        }
    }

    let data = dir.join("test_data_set_0");
    let mut inputs = Vec::new();
    for (i, tensor) in read_tensors(&data, "input")?.into_iter().enumerate() {
        let tensor = match tensor {
            Ok(tensor) => tensor,
            Err(reason) => return Ok(Loaded::Skip(format!("input {i} {reason}"))),
        };
        let name = match (&tensor.0, graph_inputs.get(i)) {
            (Some(name), _) => name.clone(),
            (None, Some(value)) => value.name.clone(),
            (None, None) => bail!("input_{i}.pb has no name and the graph no input {i}"),
        };
        inputs.push((name, tensor.1));
    }
    let mut outputs = Vec::new();
    for (i, tensor) in read_tensors(&data, "output")?.into_iter().enumerate() {
        let tensor = match tensor {
            Ok(tensor) => tensor,
            Err(reason) => return Ok(Loaded::Skip(format!("output {i} {reason}"))),
        };
        let name = match (&tensor.0, graph.output.get(i)) {
            (Some(name), _) => name.clone(),
            (None, Some(value)) => value.name.clone(),
            (None, None) => bail!("output_{i}.pb has no name and the graph no output {i}"),
        };
        outputs.push((name, tensor.1));
    }
    ensure!(!outputs.is_empty(), "no output_0.pb in {}", data.display());

    let mut unsupported = Vec::new();
    unsupported_operators(graph, onnx, &mut unsupported);
    Ok(Loaded::Run(Box::new(Case { name: name.to_string(), model, proto, inputs, outputs, unsupported })))
}

/// Why a graph input or output cannot go through maas, if it cannot: not a tensor, or a tensor
/// of a datatype maas does not serve.
fn unservable(value: &pb::ValueInfoProto) -> Option<String> {
    // tract's `TypeProto` knows tensors only: a sequence, map, optional or sparse tensor decodes
    // with no value.
    let Some(pb::type_proto::Value::TensorType(tensor)) = value.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Some("is not a tensor (sequence, map, optional or sparse)".into());
    };
    servable_datatype(tensor.elem_type).err()
}

/// `Ok` when ONNX element type `elem_type` is one maas serves, the reason otherwise.
fn servable_datatype(elem_type: i32) -> Result<(), String> {
    match DataType::try_from(elem_type) {
        Ok(dt) => match DatumType::try_from(dt) {
            Ok(dt) if oip_datatype(dt).is_some() => Ok(()),
            _ => Err(format!("has datatype {}, which maas does not serve", dt.as_str_name())),
        },
        Err(_) => Err(format!("has the unknown datatype {elem_type}")),
    }
}

/// A tensor of a `.pb` file: its name (when it has one) and value, or why maas cannot serve it.
type PbTensor = Result<(Option<String>, Tensor), String>;

/// The tensors `<prefix>_0.pb`, `<prefix>_1.pb`, … of `dir`, in order.
fn read_tensors(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PbTensor>> {
    let mut tensors = Vec::new();
    loop {
        let path = dir.join(format!("{prefix}_{}.pb", tensors.len()));
        if !path.exists() {
            return Ok(tensors);
        }
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let proto =
            tract_onnx::tensor::proto_from_reader(file).with_context(|| format!("decoding {}", path.display()))?;
        // Checked first: tract's loader panics on the datatypes it cannot hold.
        let tensor = match servable_datatype(proto.data_type) {
            Ok(()) => {
                let resolver = tract_onnx::data_resolver::FopenDataResolver;
                let tensor = catching(|| tract_onnx::tensor::load_tensor(&resolver, &proto, None))
                    .with_context(|| format!("loading {}", path.display()))?;
                Ok(((!proto.name.is_empty()).then(|| proto.name.clone()), tensor))
            }
            Err(reason) => Err(reason),
        };
        tensors.push(tensor);
    }
}

/// Adds to `names` the operators of `graph` and its subgraphs that tract has no parser for.
fn unsupported_operators(graph: &pb::GraphProto, onnx: &tract_onnx::Onnx, names: &mut Vec<String>) {
    for node in &graph.node {
        if !onnx.op_register.0.contains_key(&node.op_type) && !names.contains(&node.op_type) {
            names.push(node.op_type.clone());
        }
        for attribute in &node.attribute {
            if let Some(g) = &attribute.g {
                unsupported_operators(g, onnx, names);
            }
        }
    }
}

/// The OIP datatype of a tract datum type maas serves.
fn oip_datatype(dt: DatumType) -> Option<&'static str> {
    Some(match dt {
        DatumType::Bool => "BOOL",
        DatumType::U8 => "UINT8",
        DatumType::U16 => "UINT16",
        DatumType::U32 => "UINT32",
        DatumType::U64 => "UINT64",
        DatumType::I8 => "INT8",
        DatumType::I16 => "INT16",
        DatumType::I32 => "INT32",
        DatumType::I64 => "INT64",
        DatumType::F16 => "FP16",
        DatumType::F32 => "FP32",
        DatumType::F64 => "FP64",
        _ => return None,
    })
}

/// Runs `case` in tract in process (as `maas_fixtures::run_tract` does: inputs typed by datatype
/// and shape only) and compares the outputs.
fn run_tract(onnx: &tract_onnx::Onnx, case: &Case) -> anyhow::Result<()> {
    let mut model = onnx.model_for_proto_model(&case.proto)?;
    ensure!(
        model.inputs.len() == case.inputs.len(),
        "model has {} inputs, the test {}",
        model.inputs.len(),
        case.inputs.len()
    );
    for (i, (_, t)) in case.inputs.iter().enumerate() {
        model.set_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let outputs = plan.run(case.inputs.iter().map(|(_, t)| TValue::from(t.clone())).collect())?;
    ensure!(outputs.len() == case.outputs.len(), "{} outputs, the test has {}", outputs.len(), case.outputs.len());
    for ((name, expected), actual) in case.outputs.iter().zip(outputs.iter()) {
        // tract computes shapes (`Shape`, `Size`) as symbolic dimensions: as INT64, as ONNX has them.
        let dt = if actual.datum_type() == DatumType::TDim { DatumType::I64 } else { actual.datum_type() };
        let actual = actual.cast_to_dt(dt)?;
        compare(expected, &actual).map_err(|e| anyhow!("output {name}: {e}"))?;
    }
    Ok(())
}

/// Runs every case through one maas server over HTTP, recording the outcomes in `results`.
fn run_http(cases: &[Case], results: &mut Results) -> anyhow::Result<()> {
    let server = TestServer::start();
    let admin = server.admin();
    let many = 100_000;
    let tenant = json!({
        "name": "acme",
        "quota": { "max_models": many, "max_functions": many, "rate_per_second": 1e6 },
    });
    let created = admin.post_json("/v1/tenants", &tenant);
    ensure!(
        created.status == 201,
        "creating the tenant: {} {}",
        created.status,
        String::from_utf8_lossy(&created.body)
    );
    let names = maas_names(cases.iter().map(|c| c.name.as_str()));
    for case in cases {
        let name = names.get(case.name.as_str()).context("every case has a maas name")?;
        let outcome = match catching(|| run_one_http(&admin, case, name)) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(one_line(&format!("{e:#}"))),
        };
        if let Outcome::Fail(reason) = &outcome {
            println!("FAIL http {}: {}", case.name, cut(reason, REASON_CHARS));
        }
        results.insert(case.name.clone(), outcome);
    }
    server.stop();
    Ok(())
}

/// Valid, unique maas model and function names (`^[a-z0-9][a-z0-9._-]{0,62}$`) for test names:
/// `test_` dropped, lower case, other characters `-`, cut to fit, a counter added on a clash.
fn maas_names<'a>(tests: impl Iterator<Item = &'a str>) -> HashMap<&'a str, String> {
    let mut taken = HashSet::new();
    let mut names = HashMap::new();
    for test in tests {
        let base: String = test
            .strip_prefix("test_")
            .unwrap_or(test)
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
            .collect();
        let base = if base.starts_with(|c: char| c.is_ascii_alphanumeric()) { base } else { format!("t{base}") };
        let mut name: String = base.chars().take(63).collect();
        let mut n = 2;
        while !taken.insert(name.clone()) {
            let suffix = format!("-{n}");
            name = format!("{}{suffix}", base.chars().take(63 - suffix.len()).collect::<String>());
            n += 1;
        }
        names.insert(test, name);
    }
    names
}

/// Uploads `case`'s model as `name`, deploys a `builtin:tensor` function for it, invokes it
/// with the shipped inputs and compares its outputs with the shipped ones.
fn run_one_http(admin: &Client, case: &Case, name: &str) -> anyhow::Result<()> {
    let uploaded = admin.put_bytes(&format!("/v1/tenants/acme/models/{name}"), &case.model);
    ensure!(matches!(uploaded.status, 200 | 201), "upload: {}", error_text(&uploaded));
    let function = json!({ "component": "builtin:tensor", "models": { "model": name } });
    let deployed = admin.put_json(&format!("/v1/tenants/acme/functions/{name}"), &function);
    ensure!(matches!(deployed.status, 200 | 201), "deploy: {}", error_text(&deployed));

    let (body, header_length) = binary_request(&case.inputs)?;
    let header_length = header_length.to_string();
    let response = admin.send_with_headers(
        "POST",
        &format!("/fn/acme/{name}"),
        &[("Inference-Header-Content-Length", &header_length)],
        Some((&body, "application/octet-stream")),
    );
    ensure!(response.status == 200, "invoke: {}", error_text(&response));
    let outputs = binary_outputs(&response)?;
    for (name, expected) in &case.outputs {
        let actual =
            outputs.iter().find(|(n, _)| n == name).with_context(|| format!("no output {name} in the answer"))?;
        compare(expected, &actual.1).map_err(|e| anyhow!("output {name}: {e}"))?;
    }
    Ok(())
}

/// An OIP infer request carrying `inputs` in the binary tensor data extension and asking for
/// binary outputs: the body and the length of its JSON header.
fn binary_request(inputs: &[(String, Tensor)]) -> anyhow::Result<(Vec<u8>, usize)> {
    let mut described = Vec::new();
    for (name, t) in inputs {
        let datatype = oip_datatype(t.datum_type()).context("loaded inputs have servable datatypes")?;
        described.push(json!({
            "name": name, "shape": t.shape(), "datatype": datatype,
            "parameters": { "binary_data_size": t.as_bytes().len() },
        }));
    }
    let header = json!({ "inputs": described, "parameters": { "binary_data_output": true } }).to_string();
    let header_length = header.len();
    let mut body = header.into_bytes();
    for (_, t) in inputs {
        body.extend_from_slice(t.as_bytes());
    }
    Ok((body, header_length))
}

/// The outputs of a binary-extension answer: its JSON header, then each output's bytes in order.
fn binary_outputs(response: &maas_tests::Response) -> anyhow::Result<Vec<(String, Tensor)>> {
    let header_length: usize = response
        .header("inference-header-content-length")
        .context("the answer has no Inference-Header-Content-Length")?
        .parse()
        .context("Inference-Header-Content-Length is not a number")?;
    let header = response.body.get(..header_length).context("the answer is shorter than its header length")?;
    let header: Value = serde_json::from_slice(header).context("the answer's header is not JSON")?;
    let mut rest = &response.body[header_length..];
    let mut outputs = Vec::new();
    for output in header["outputs"].as_array().context("the answer has no outputs array")? {
        let name = output["name"].as_str().context("an output has no name")?;
        let datatype = output["datatype"].as_str().context("an output has no datatype")?;
        let shape = output["shape"]
            .as_array()
            .context("an output has no shape")?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize).context("a dimension is not a size"))
            .collect::<anyhow::Result<Vec<usize>>>()?;
        let size = output["parameters"]["binary_data_size"]
            .as_u64()
            .with_context(|| format!("output {name} is not binary"))? as usize;
        ensure!(rest.len() >= size, "output {name}: {size} bytes announced, {} left", rest.len());
        let (bytes, tail) = rest.split_at(size);
        rest = tail;
        let tensor = tensor_from_le(datatype, &shape, bytes).with_context(|| format!("output {name}"))?;
        outputs.push((name.to_string(), tensor));
    }
    ensure!(rest.is_empty(), "{} bytes after the last output", rest.len());
    Ok(outputs)
}

/// A tensor of OIP `datatype` and `shape` from its little-endian `bytes`.
fn tensor_from_le(datatype: &str, shape: &[usize], bytes: &[u8]) -> anyhow::Result<Tensor> {
    let volume: usize = shape.iter().product();
    macro_rules! decode {
        ($t:ty) => {{
            const SIZE: usize = std::mem::size_of::<$t>();
            ensure!(bytes.len() == volume * SIZE, "{} bytes for {volume} {datatype} values", bytes.len());
            let values: Vec<$t> = bytes
                .chunks_exact(SIZE)
                .map(|chunk| {
                    let mut le = [0u8; SIZE];
                    le.copy_from_slice(chunk);
                    <$t>::from_le_bytes(le)
                })
                .collect();
            Tensor::from_shape(shape, &values)?
        }};
    }
    Ok(match datatype {
        "BOOL" => {
            ensure!(bytes.len() == volume, "{} bytes for {volume} BOOL values", bytes.len());
            let values: Vec<bool> = bytes.iter().map(|&b| b != 0).collect();
            Tensor::from_shape(shape, &values)?
        }
        "UINT8" => decode!(u8),
        "UINT16" => decode!(u16),
        "UINT32" => decode!(u32),
        "UINT64" => decode!(u64),
        "INT8" => decode!(i8),
        "INT16" => decode!(i16),
        "INT32" => decode!(i32),
        "INT64" => decode!(i64),
        "FP16" => decode!(f16),
        "FP32" => decode!(f32),
        "FP64" => decode!(f64),
        other => bail!("unexpected datatype {other}"),
    })
}

/// `actual` against `expected`: same datatype and shape, floats within the tolerances (NaN
/// matching NaN), everything else equal.
fn compare(expected: &Tensor, actual: &Tensor) -> Result<(), String> {
    let (edt, adt) = (expected.datum_type(), actual.datum_type());
    if edt != adt {
        return Err(format!("datatype {}, expected {}", name_of(adt), name_of(edt)));
    }
    if expected.shape() != actual.shape() {
        return Err(format!("shape {:?}, expected {:?}", actual.shape(), expected.shape()));
    }
    if edt.is_float() {
        let as_f64 = |t: &Tensor| -> Result<Vec<f64>, String> {
            let t = t.cast_to::<f64>().map_err(|e| format!("{e:#}"))?;
            Ok(t.to_plain_array_view::<f64>().map_err(|e| format!("{e:#}"))?.iter().copied().collect())
        };
        let (e, a) = (as_f64(expected)?, as_f64(actual)?);
        let close = |e: f64, a: f64| {
            (e.is_nan() && a.is_nan())
                || e == a
                || (a - e).abs() <= (RELATIVE_TOLERANCE * e.abs()).max(ABSOLUTE_TOLERANCE)
        };
        let bad = e.iter().zip(&a).filter(|(e, a)| !close(**e, **a)).count();
        if let Some(i) = e.iter().zip(&a).position(|(e, a)| !close(*e, *a)) {
            return Err(format!("{bad} of {} values differ, first at {i}: {} vs expected {}", e.len(), a[i], e[i]));
        }
    } else if expected != actual {
        let as_strings = |t: &Tensor| -> Result<Vec<String>, String> {
            let t = t.cast_to::<String>().map_err(|e| format!("{e:#}"))?;
            Ok(t.to_plain_array_view::<String>().map_err(|e| format!("{e:#}"))?.iter().cloned().collect())
        };
        let (e, a) = (as_strings(expected)?, as_strings(actual)?);
        let bad = e.iter().zip(&a).filter(|(e, a)| e != a).count();
        let i = e.iter().zip(&a).position(|(e, a)| e != a).unwrap_or(0);
        return Err(format!(
            "{bad} of {} values differ, first at {i}: {} vs expected {}",
            e.len(),
            a.get(i).map_or("?", |s| s.as_str()),
            e.get(i).map_or("?", |s| s.as_str())
        ));
    }
    Ok(())
}

/// A datum type's OIP name, or tract's for the others.
fn name_of(dt: DatumType) -> String {
    oip_datatype(dt).map_or_else(|| format!("{dt:?}"), String::from)
}

/// An HTTP error answer as `<status> <code>: <error>` (or its body when it is not an error body).
fn error_text(response: &maas_tests::Response) -> String {
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(body) if body["error"].is_string() => {
            format!(
                "{} {}: {}",
                response.status,
                body["code"].as_str().unwrap_or(""),
                body["error"].as_str().unwrap_or("")
            )
        }
        _ => format!("{} {}", response.status, String::from_utf8_lossy(&response.body)),
    }
}

/// `text` on one line, runs of white space made one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` cut to `chars` characters.
fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() > chars {
        format!("{}…", text.chars().take(chars).collect::<String>())
    } else {
        text.to_string()
    }
}

/// A failure's short cause for the expectation file: the step and error code of an HTTP
/// failure (`upload invalid_model: …`) and tract's own message, without what maas wraps around
/// it (the model's input shapes, the first of the strategies it tried), cut to [`CAUSE_CHARS`].
fn cause(reason: &str) -> String {
    let mut text = reason;
    let mut prefix = String::new();
    // "<step>: <status> <code>: <message>"
    if let Some((step, rest)) = text.split_once(": ")
        && matches!(step, "upload" | "deploy" | "invoke")
        && let Some((status_code, message)) = rest.split_once(": ")
    {
        let code = status_code.split_once(' ').map_or(status_code, |(_, code)| code);
        prefix = format!("{step} {code}: ");
        text = message;
    }
    for wrapper in ["tract cannot load this model: ", "Pinned: "] {
        if let Some((_, tail)) = text.split_once(wrapper) {
            text = tail;
        }
    }
    if let Some((head, _)) = text.split_once("; Frozen: ") {
        text = head;
    }
    cut(&format!("{prefix}{text}"), CAUSE_CHARS)
}

/// `N passed, M failed, K skipped` of one loop.
fn counts(results: &Results) -> String {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for outcome in results.values() {
        match outcome {
            Outcome::Pass => passed += 1,
            Outcome::Fail(_) => failed += 1,
            Outcome::Skip(_) => skipped += 1,
        }
    }
    format!("{passed} passed, {failed} failed, {skipped} skipped")
}

/// Prints how many tests were skipped for each kind of reason.
fn print_skips(results: &Results) {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in results.values() {
        if let Outcome::Skip(reason) = outcome {
            // "input x has datatype STRING, …" → "has datatype STRING, …": the kind, not the name.
            let kind = reason.split_once(' ').map_or(reason.as_str(), |(_, rest)| rest);
            let kind = kind.split_once(' ').map_or(kind, |(_, rest)| rest);
            *kinds.entry(kind.to_string()).or_default() += 1;
        }
    }
    for (kind, n) in kinds {
        println!("skipped {n}: {kind}");
    }
}

/// The expectation file's lines, by test: `pass`, `fail <cause>` or `skip <reason>`.
fn read_expected(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut expected = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, status) =
            line.split_once(' ').with_context(|| format!("{}:{}: not `<test> <status>`", path.display(), n + 1))?;
        let status = status.trim();
        let word = status.split_once(' ').map_or(status, |(word, _)| word);
        ensure!(
            matches!(word, "pass" | "fail" | "skip"),
            "{}:{}: status {word:?} is none of pass, fail, skip",
            path.display(),
            n + 1
        );
        expected.insert(name.to_string(), status.to_string());
    }
    Ok(expected)
}

/// Rewrites the lines of the tests in `results` in the expectation file, keeping the others.
/// A failure's cause names the operators tract lacks, when it lacks some (`causes`).
fn write_expected(path: &Path, results: &Results, causes: &HashMap<&str, String>) -> anyhow::Result<()> {
    let mut lines = if path.exists() { read_expected(path)? } else { BTreeMap::new() };
    for (name, outcome) in results {
        let line = match outcome {
            Outcome::Pass => "pass".to_string(),
            Outcome::Fail(reason) => {
                let cause = causes.get(name.as_str()).cloned().unwrap_or_else(|| cause(reason));
                format!("fail {cause}")
            }
            Outcome::Skip(reason) => format!("skip {reason}"),
        };
        lines.insert(name.clone(), line);
    }
    let mut text = String::from(
        "# ONNX backend node tests (onnx 1.17.0) through maas over HTTP: `<test> pass`, `<test> fail <cause>`\n\
         # or `<test> skip <reason>`. Checked by tests/src/bin/node-check.rs; regenerate with --write-expected.\n",
    );
    for (name, line) in lines {
        text.push_str(&format!("{name} {line}\n"));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Checks the HTTP results against `expected`, the expectation file at `path`: `false` when a
/// test listed as `pass` does not pass. Improvements and tests the file does not list are
/// printed as notices.
fn check_expected(path: &Path, expected: &BTreeMap<String, String>, results: &Results) -> bool {
    let mut regressions = 0;
    for (name, outcome) in results {
        let listed = expected.get(name).map(String::as_str);
        match (listed, outcome) {
            (Some("pass"), Outcome::Pass) => {}
            (Some("pass"), Outcome::Fail(reason) | Outcome::Skip(reason)) => {
                println!("REGRESSION {name}: listed as pass, now {}", cut(reason, REASON_CHARS));
                regressions += 1;
            }
            (Some(listed), Outcome::Pass) if listed.starts_with("fail") => {
                println!("notice: {name} passes now but is listed as `{listed}` (update with --write-expected)");
            }
            (None, _) => println!("notice: {name} is not in {}", path.display()),
            _ => {}
        }
    }
    if regressions > 0 {
        println!("{regressions} regressions against {}", path.display());
    }
    regressions == 0
}
