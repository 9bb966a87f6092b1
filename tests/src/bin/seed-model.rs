//! Writes one of the maas test ONNX models to a file.
//!
//! ```text
//! seed-model [--kind mlp|mlp-batch|linear|int64] [--seed N] <out.onnx>
//! ```
//!
//! Defaults: `--kind mlp --seed 42`. `mlp` is the seed model of the README's quick start
//! (`cargo run -p maas-tests --bin seed-model -- mlp.onnx`); see `maas_tests::models` for
//! what each kind is. `linear` is `y = x·[1, 2, 3, 4] + 0.5`.

use std::process::ExitCode;

use maas_tests::models;

const USAGE: &str = "usage: seed-model [--kind mlp|mlp-batch|linear|int64] [--seed N] <out.onnx>";

/// Parsed command line.
struct Args {
    kind: String,
    seed: u64,
    out: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut kind = "mlp".to_string();
    let mut seed = 42u64;
    let mut out = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--kind" => kind = args.next().ok_or("--kind needs a value")?,
            "--seed" => {
                let v = args.next().ok_or("--seed needs a value")?;
                seed = v.parse().map_err(|_| format!("invalid --seed {v:?}"))?;
            }
            s if s.starts_with("--kind=") => kind = s["--kind=".len()..].to_string(),
            s if s.starts_with("--seed=") => {
                let v = &s["--seed=".len()..];
                seed = v.parse().map_err(|_| format!("invalid --seed {v:?}"))?;
            }
            s if s.starts_with('-') && s != "-" => return Err(format!("unknown option {s:?}")),
            _ if out.is_some() => return Err(format!("unexpected argument {arg:?}")),
            _ => out = Some(arg),
        }
    }
    let out = out.ok_or("missing output path")?;
    Ok(Args { kind, seed, out })
}

fn build(kind: &str, seed: u64) -> Result<Vec<u8>, String> {
    Ok(match kind {
        "mlp" => models::mlp(seed),
        "mlp-batch" => models::mlp_batch(seed),
        "linear" => models::linear(&[1.0, 2.0, 3.0, 4.0], 0.5),
        "int64" => models::int64_model(),
        other => return Err(format!("unknown --kind {other:?}")),
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("seed-model: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let bytes = match build(&args.kind, args.seed) {
        Ok(bytes) => bytes,
        Err(msg) => {
            eprintln!("seed-model: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::write(&args.out, &bytes) {
        eprintln!("seed-model: writing {}: {e}", args.out);
        return ExitCode::FAILURE;
    }
    println!("wrote {} ({} bytes, kind {})", args.out, bytes.len(), args.kind);
    ExitCode::SUCCESS
}
