//! A function built against the previous function world, `maas:function@0.1.0`
//! (`wit/compat/maas-function-0.1.0.wit`), with bindings of its own rather than `maas-guest`'s:
//! the platform's tests deploy it to check that components built before the world changed still
//! link and run.
//!
//! It describes and runs the model the manifest names `model` (an `FP32` input of any shape
//! with every dimension given or `-1`, run on zeros with `-1` read as 1) and answers
//! `200 "<inputs> <first input's datatype> <outputs of the run>"`, or `500` with the host's error.

/// The bindings of the 0.1.0 world. The generated ABI glue takes one argument per pointer and
/// length, hence the `allow`.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "../../wit/compat/maas-function-0.1.0.wit",
    });
}

use bindings::maas::function::inference::{self, Error};
use bindings::maas::function::types::{Datatype, Request, Response, Tensor};
use bindings::{Guest, export};

/// The function.
struct Compat;

impl Guest for Compat {
    fn handle(_req: Request) -> Response {
        match run() {
            Ok(text) => Response { status: 200, headers: vec![], body: text.into_bytes() },
            Err(e) => {
                let text = match e {
                    Error::ModelNotFound(m) | Error::InvalidInput(m) | Error::Failed(m) | Error::Busy(m) => m,
                };
                Response { status: 500, headers: vec![], body: text.into_bytes() }
            }
        }
    }
}

fn run() -> Result<String, Error> {
    let signature = inference::describe("model")?;
    let input = signature.inputs.first().ok_or_else(|| Error::Failed("the model has no inputs".into()))?;
    let shape: Vec<u64> = input.shape.iter().map(|&d| if d < 0 { 1 } else { d as u64 }).collect();
    let elements: u64 = shape.iter().product();
    let datatype = match input.datatype {
        Datatype::Fp32 => "FP32",
        _ => return Err(Error::Failed("this test function runs FP32 inputs only".into())),
    };
    let zeros =
        Tensor { name: input.name.clone(), datatype: Datatype::Fp32, shape, data: vec![0; elements as usize * 4] };
    let outputs = inference::infer("model", &[zeros])?;
    Ok(format!("{} {datatype} {}", signature.inputs.len(), outputs.len()))
}

export!(Compat with_types_in bindings);
