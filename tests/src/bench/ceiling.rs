//! The ceiling of maas's own stack: the seed MLP behind a minimal hyper server, OIP JSON in and
//! out, its plan run on the tokio worker that read the request. No sandbox, tenancy, registry,
//! admission, metering or thread hop: what hyper, serde and tract cost together, which the
//! platform bench compares maas with.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

/// One OIP input or output tensor of FP32 data.
#[derive(Deserialize, Serialize)]
struct Tensor {
    name: String,
    shape: Vec<usize>,
    datatype: String,
    data: Vec<f32>,
}

#[derive(Deserialize)]
struct InferRequest {
    inputs: Vec<Tensor>,
}

#[derive(Serialize)]
struct InferResponse {
    model_name: &'static str,
    outputs: Vec<Tensor>,
}

type Plan = Arc<TypedRunnableModel>;

/// Serves the seed MLP on a free loopback port: prints the address, then serves until stdin
/// closes.
pub fn serve() {
    let model = crate::models::mlp(42);
    let plan: Plan = tract_onnx::onnx()
        .model_for_read(&mut model.as_slice())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("the seed MLP plans");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        println!("{}", listener.local_addr().expect("an address"));
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        });
        let accept = async {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let plan = plan.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| infer(plan.clone(), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        };
        tokio::select! {
            _ = stdin_closed => {}
            () = accept => {}
        }
    });
}

/// One OIP inference: the body parsed, the plan run, the answer written.
async fn infer(plan: Plan, req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = match req.into_body().collect().await {
        Ok(body) => run(&plan, &body.to_bytes()),
        Err(e) => Err(e.to_string()),
    };
    Ok(match answer {
        Ok(json) => Response::builder().header("content-type", "application/json").body(Full::new(json.into())),
        Err(e) => Response::builder().status(400).body(Full::new(e.into())),
    }
    .expect("a response"))
}

fn run(plan: &Plan, body: &[u8]) -> Result<Vec<u8>, String> {
    let request: InferRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let input = request.inputs.into_iter().next().ok_or("no input")?;
    let tensor = tract_ndarray::ArrayD::from_shape_vec(input.shape, input.data).map_err(|e| e.to_string())?;
    let outputs = plan.run(tvec![tensor.into_tensor().into_tvalue()]).map_err(|e| e.to_string())?;
    let output = outputs[0].to_plain_array_view::<f32>().map_err(|e| e.to_string())?;
    let response = InferResponse {
        model_name: "mlp",
        outputs: vec![Tensor {
            name: "output".into(),
            shape: output.shape().to_vec(),
            datatype: "FP32".into(),
            data: output.iter().copied().collect(),
        }],
    };
    serde_json::to_vec(&response).map_err(|e| e.to_string())
}
