//! Tests of the OIP codec: JSON and binary requests as `tritonclient` builds them, content
//! encodings, validation against a signature, every malformed case's message, and responses read
//! back the way `tritonclient` reads them.

use super::*;
use crate::{Datatype, F16, Request, Response, Signature, Tensor, TensorInfo};
use serde_json::{Value, json};

fn request(inputs: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "inputs": inputs })).unwrap()
}

fn decode_one(input: Value) -> Result<Tensor, OipError> {
    let body = request(json!([input]));
    let request = InferRequest::from_json(&body)?;
    let mut tensors = request.tensors()?;
    Ok(tensors.remove(0))
}

fn error(input: Value) -> String {
    decode_one(input).unwrap_err().message().to_owned()
}

#[test]
fn flat_and_nested_fp32() {
    let flat = decode_one(json!({"name": "x", "shape": [2, 3], "datatype": "FP32",
                                 "data": [1, 2, 3, 4, 5, 6.5]}))
    .unwrap();
    let nested = decode_one(json!({"name": "x", "shape": [2, 3], "datatype": "FP32",
                                   "data": [[1, 2, 3], [4, 5, 6.5]]}))
    .unwrap();
    assert_eq!(flat, nested);
    assert_eq!(flat.name, "x");
    assert_eq!(flat.datatype, Datatype::Fp32);
    assert_eq!(flat.shape, vec![2, 3]);
    assert_eq!(&flat.data[..4], &1.0f32.to_le_bytes());
    assert_eq!(flat.to_f32(), Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]));
    let deep = decode_one(json!({"name": "x", "shape": [1, 2, 1], "datatype": "FP32",
                                 "data": [[[1], [2]]]}))
    .unwrap();
    assert_eq!(deep.to_f32(), Some(vec![1.0, 2.0]));
}

#[test]
fn every_datatype() {
    let cases = [
        ("BOOL", json!([true, false]), vec![1, 0]),
        ("UINT8", json!([0, 255]), vec![0, 255]),
        ("UINT16", json!([1, 65535]), vec![1, 0, 255, 255]),
        ("INT8", json!([-128, 127.0]), vec![0x80, 0x7f]),
        ("INT16", json!([-2, 3]), vec![0xfe, 0xff, 3, 0]),
        ("FP16", json!([1, -2.0]), vec![0x00, 0x3c, 0x00, 0xc0]),
    ];
    for (datatype, data, bytes) in cases {
        let tensor = decode_one(json!({"name": "t", "shape": [2], "datatype": datatype,
                                       "data": data}))
        .unwrap();
        assert_eq!(tensor.datatype.name(), datatype);
        assert_eq!(tensor.data, bytes, "{datatype}");
    }
    let wide = decode_one(json!({"name": "t", "shape": [2], "datatype": "UINT64",
                                 "data": [u64::MAX, 0]}))
    .unwrap();
    assert_eq!(wide.to_vec::<u64>(), Some(vec![u64::MAX, 0]));
    let signed = decode_one(json!({"name": "t", "shape": [3], "datatype": "INT64",
                                   "data": [i64::MIN, i64::MAX, -1]}))
    .unwrap();
    assert_eq!(signed.to_vec::<i64>(), Some(vec![i64::MIN, i64::MAX, -1]));
    let int32 = decode_one(json!({"name": "t", "shape": [2], "datatype": "INT32",
                                  "data": [-2147483648i64, 2147483647]}))
    .unwrap();
    assert_eq!(int32.to_vec::<i32>(), Some(vec![i32::MIN, i32::MAX]));
    let uint32 = decode_one(json!({"name": "t", "shape": [1], "datatype": "UINT32",
                                   "data": [4294967295u64]}))
    .unwrap();
    assert_eq!(uint32.to_vec::<u32>(), Some(vec![u32::MAX]));
    let fp64 = decode_one(json!({"name": "t", "shape": [2], "datatype": "FP64",
                                 "data": [0.1, -3]}))
    .unwrap();
    assert_eq!(fp64.to_vec::<f64>(), Some(vec![0.1, -3.0]));
}

#[test]
fn scalar_shape() {
    let scalar = decode_one(json!({"name": "s", "shape": [], "datatype": "INT32", "data": [5]})).unwrap();
    assert_eq!(scalar.shape, Vec::<u64>::new());
    assert_eq!(scalar.to_vec::<i32>(), Some(vec![5]));
    let empty = decode_one(json!({"name": "e", "shape": [0, 3], "datatype": "FP32", "data": []})).unwrap();
    assert!(empty.data.is_empty());
}

#[test]
fn element_count_must_match_shape() {
    assert_eq!(
        error(json!({"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]})),
        "input \"x\": shape [2, 3] holds 6 elements but \"data\" has 3"
    );
    assert_eq!(
        error(json!({"name": "x", "shape": [2], "datatype": "FP32", "data": [[1, 2], [3]]})),
        "input \"x\": shape [2] holds 2 elements but \"data\" has 3"
    );
    assert_eq!(
        error(json!({"name": "x", "shape": [1000000000, 1000000000], "datatype": "FP64",
                     "data": [1]})),
        "input \"x\": shape [1000000000, 1000000000] holds 1000000000000000000 elements \
         but \"data\" has 1"
    );
    assert_eq!(
        error(json!({"name": "x", "shape": [i64::MAX, 4], "datatype": "FP32", "data": [1]})),
        format!("input \"x\": shape [{}, 4] has too many elements", i64::MAX)
    );
}

#[test]
fn bad_shapes_and_datatypes() {
    assert_eq!(
        error(json!({"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": [1, 2, 3]})),
        "input \"x\": shape [-1, 3] has a negative dimension"
    );
    assert_eq!(
        error(json!({"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]})),
        "input \"text\": BYTES tensors are not supported: the models here take numeric tensors (BOOL, UINT8, \
         UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64)"
    );
    assert_eq!(
        error(json!({"name": "x", "shape": [1], "datatype": "fp32", "data": [1]})),
        "input \"x\": unknown datatype \"fp32\" (expected one of BOOL, UINT8, UINT16, UINT32, \
         UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64)"
    );
    assert_eq!(
        error(json!({"name": "x", "shape": [1], "datatype": "FP32"})),
        "input \"x\": has neither \"data\" nor a binary_data_size parameter"
    );
    assert_eq!(
        error(json!({"name": "x", "shape": [1], "datatype": "FP32", "data": 1})),
        "input \"x\": \"data\" must be an array"
    );
}

#[test]
fn bad_elements() {
    let cases = [
        ("UINT8", json!([1, 256]), "element 1 is 256, out of range for UINT8"),
        ("UINT32", json!([-1, 0]), "element 0 is -1, out of range for UINT32"),
        ("INT8", json!([1, 1.5]), "element 1 is 1.5, not an integer (INT8 needs integers)"),
        ("INT64", json!([1e19, 0]), "element 0 is 10000000000000000000, out of range for INT64"),
        ("BOOL", json!([true, 1]), "element 1 is 1, expected true or false"),
        ("FP32", json!([true, 1]), "element 0 is true, expected a number"),
        ("FP32", json!([1, "2"]), "element 1 is a string, expected a number"),
        ("FP32", json!([null, 2]), "element 0 is null, expected a number"),
        ("BOOL", json!([[true], [{}]]), "element 1 is an object, expected true or false"),
    ];
    for (datatype, data, message) in cases {
        assert_eq!(
            error(json!({"name": "in", "shape": [2], "datatype": datatype, "data": data})),
            format!("input \"in\": {message}"),
            "{datatype}"
        );
    }
}

#[test]
fn request_fields() {
    let body = br#"{"id": "r1", "parameters": {"p": 1},
        "inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [1],
                    "parameters": {"q": true}}],
        "outputs": [{"name": "y"}, {"name": "z", "parameters": {}}]}"#;
    let request = InferRequest::from_json(body).unwrap();
    assert_eq!(request.id.as_deref(), Some("r1"));
    assert_eq!(request.parameters.as_ref().unwrap()["p"], json!(1));
    assert_eq!(request.inputs[0].parameters.as_ref().unwrap()["q"], json!(true));
    assert_eq!(request.requested_outputs().unwrap().collect::<Vec<_>>(), ["y", "z"]);
    let plain = InferRequest::from_json(br#"{"inputs": []}"#).unwrap();
    assert!(plain.id.is_none() && plain.requested_outputs().is_none());
    let all = InferRequest::from_json(br#"{"inputs": [], "outputs": []}"#).unwrap();
    assert!(all.requested_outputs().is_none());
}

#[test]
fn malformed_requests() {
    let missing = InferRequest::from_json(br#"{"id": "1"}"#).unwrap_err();
    assert!(missing.message().starts_with("invalid OIP infer request JSON: missing field `inputs`"));
    let syntax = InferRequest::from_json(b"{\"inputs\": [").unwrap_err();
    assert!(syntax.message().starts_with("invalid OIP infer request JSON: "), "{syntax}");
    let shape =
        InferRequest::from_json(br#"{"inputs": [{"name": "x", "shape": "2", "datatype": "FP32", "data": []}]}"#)
            .unwrap_err();
    assert!(shape.message().contains("invalid type: string"), "{shape}");
    let response = Response::from(missing);
    assert_eq!(response.status, 400);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["code"], "invalid_input");
}

#[test]
fn response_json() {
    let response = InferResponse {
        id: None,
        model_name: "m".into(),
        model_version: Some("2".into()),
        outputs: vec![
            Tensor::from_f32("p", [1, 3], &[0.1, 0.7, 0.2]),
            Tensor::from_slice("b", [2], &[true, false]),
            Tensor::from_slice("h", [2], &[F16::from_f32(0.5), F16::from_f32(-1.0)]),
            Tensor::from_slice("i", [2], &[i64::MIN, 3]),
            Tensor::from_slice("u", [1], &[u64::MAX]),
        ],
        binary_outputs: vec![],
    };
    let json: Value = serde_json::from_slice(&response.to_json()).unwrap();
    assert_eq!(
        json,
        json!({"model_name": "m", "model_version": "2", "outputs": [
            {"name": "p", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.7, 0.2]},
            {"name": "b", "shape": [2], "datatype": "BOOL", "data": [true, false]},
            {"name": "h", "shape": [2], "datatype": "FP16", "data": [0.5, -1.0]},
            {"name": "i", "shape": [2], "datatype": "INT64", "data": [i64::MIN, 3]},
            {"name": "u", "shape": [1], "datatype": "UINT64", "data": [u64::MAX]},
        ]})
    );
    // f32 values print in their shortest form, not widened to f64.
    let text = String::from_utf8(response.to_json()).unwrap();
    assert!(text.contains("[0.1,0.7,0.2]"), "{text}");
    let http = Response::from(&response);
    assert_eq!((http.status, http.header("content-type")), (200, Some("application/json")));
}

#[test]
fn decode_then_encode_round_trips() {
    for datatype in Datatype::ALL {
        let data = match datatype {
            Datatype::Bool => json!([[true, false], [false, true]]),
            Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 | Datatype::Uint64 => {
                json!([[0, 1], [2, 3]])
            }
            Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64 => {
                json!([[0.5, -1.0], [2.25, 3.0]])
            }
            _ => json!([[0, -1], [2, -3]]),
        };
        let input = json!({"name": "x", "shape": [2, 2], "datatype": datatype.name(),
                           "data": data.clone()});
        let tensor = decode_one(input).unwrap();
        assert_eq!(tensor.data.len(), 4 * datatype.size());
        let response = InferResponse {
            id: Some("id".into()),
            model_name: "m".into(),
            model_version: None,
            outputs: vec![tensor],
            binary_outputs: vec![],
        };
        let json: Value = serde_json::from_slice(&response.to_json()).unwrap();
        let flat: Vec<Value> =
            data.as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().clone()).collect();
        assert_eq!(json["outputs"][0]["data"], Value::Array(flat), "{datatype}");
        assert_eq!(json["id"], "id");
        assert!(json.get("model_version").is_none());
    }
}

#[test]
fn metadata_json() {
    let signature = Signature {
        inputs: vec![TensorInfo { name: "x".into(), datatype: Datatype::Fp32, shape: vec![-1, 4] }],
        outputs: vec![TensorInfo { name: "y".into(), datatype: Datatype::Int64, shape: vec![-1] }],
    };
    let metadata = ModelMetadata::new("iris", vec![], &signature);
    assert_eq!(
        serde_json::to_value(&metadata).unwrap(),
        json!({"name": "iris",
               "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
               "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}]})
    );
    let versioned = ModelMetadata::new("iris", vec!["3".into()], &signature);
    assert_eq!(serde_json::to_value(&versioned).unwrap()["versions"], json!(["3"]));
}

// The binary tensor data extension, content encodings and validation, end to end.

/// The model of these tests: inputs `x` FP32 `[-1, 4]` and `mask` BOOL `[-1]`; outputs `probs`
/// FP32 `[-1, 3]` and `label` INT64 `[-1]`.
fn signature() -> Signature {
    let info = |name: &str, datatype, shape: &[i64]| TensorInfo { name: name.into(), datatype, shape: shape.to_vec() };
    Signature {
        inputs: vec![info("x", Datatype::Fp32, &[-1, 4]), info("mask", Datatype::Bool, &[-1])],
        outputs: vec![info("probs", Datatype::Fp32, &[-1, 3]), info("label", Datatype::Int64, &[-1])],
    }
}

/// A POST as the platform hands it to a function: header names in lower case.
fn http(headers: &[(&str, &str)], body: Vec<u8>) -> Request {
    Request {
        method: "POST".into(),
        path: "/v2/models/iris/infer".into(),
        query: String::new(),
        headers: headers.iter().map(|&(name, value)| (name.into(), value.into())).collect(),
        body,
    }
}

/// What `tritonclient.http`'s `_get_inference_request` builds: the JSON (compact, as rapidjson
/// dumps it), then the raw bytes of each input set with `binary_data=True`, in input order; and
/// the JSON's length, which it sends as `Inference-Header-Content-Length`.
fn tritonclient_body(json: &str, tensors: &[&[u8]]) -> (Vec<u8>, String) {
    let mut body = json.as_bytes().to_vec();
    for tensor in tensors {
        body.extend_from_slice(tensor);
    }
    (body, json.len().to_string())
}

/// The little-endian bytes of `values`, as numpy's `tobytes()` gives them.
fn le<T: crate::Element>(values: &[T]) -> Vec<u8> {
    Tensor::from_slice("", [values.len() as u64], values).data
}

/// Everything builtin:tensor does with a request before inference.
fn serve(req: &Request) -> Result<(Vec<Tensor>, ResponsePlan), OipError> {
    let body = request_body(req, DEFAULT_MAX_DECOMPRESSED_BYTES)?;
    let request = InferRequest::from_body(&body, req.header(INFERENCE_HEADER_CONTENT_LENGTH))?;
    request.validate(&signature())?;
    Ok((request.tensors()?, request.response_plan()))
}

/// The message of the error `serve` gives for `body` with `headers`.
fn serve_error(headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> String {
    serve(&http(headers, body.into())).map(|_| ()).unwrap_err().message().to_owned()
}

/// Reads a response the way `tritonclient.http.InferResult` does: the first
/// `Inference-Header-Content-Length` bytes (all of the body without that header) are JSON, and
/// each output with a `binary_data_size` parameter takes that many of the bytes after it, in
/// order. Returns the JSON and the binary outputs' bytes by name.
fn read_like_tritonclient(response: &Response) -> (Value, Vec<(String, Vec<u8>)>) {
    assert_eq!(response.status, 200);
    let Some(length) = response.header("Inference-Header-Content-Length") else {
        return (serde_json::from_slice(&response.body).unwrap(), Vec::new());
    };
    let length: usize = length.parse().unwrap();
    let json: Value = serde_json::from_slice(&response.body[..length]).unwrap();
    let mut buffer = &response.body[length..];
    let mut binary = Vec::new();
    for output in json["outputs"].as_array().unwrap() {
        if let Some(size) = output["parameters"]["binary_data_size"].as_u64() {
            let (data, rest) = buffer.split_at(size as usize);
            binary.push((output["name"].as_str().unwrap().to_owned(), data.to_vec()));
            buffer = rest;
        }
    }
    assert!(buffer.is_empty(), "{} bytes after the binary outputs", buffer.len());
    (json, binary)
}

/// The model's outputs for the tests' requests.
fn model_outputs() -> Vec<Tensor> {
    vec![
        Tensor::from_f32("probs", [2, 3], &[0.1, 0.7, 0.2, 0.6, 0.3, 0.1]),
        Tensor::from_slice("label", [2], &[1i64, 0]),
    ]
}

const X: [f32; 8] = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];

#[test]
fn tritonclient_binary_request_and_response() {
    // client.infer("iris", [x, mask], outputs=[InferRequestedOutput("probs"),
    // InferRequestedOutput("label", binary_data=False)], request_id="42")
    let json = r#"{"id":"42","inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}},{"name":"mask","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}],"outputs":[{"name":"probs","parameters":{"binary_data":true}},{"name":"label","parameters":{"binary_data":false}}]}"#;
    let (body, header_length) = tritonclient_body(json, &[&le(&X), &[1, 0]]);
    let content_length = body.len().to_string();
    let req = http(
        &[
            ("host", "localhost:8080"),
            ("user-agent", "python/gevent-http-client-2.3.1"),
            ("inference-header-content-length", &header_length),
            ("content-length", &content_length),
        ],
        body,
    );
    let (inputs, plan) = serve(&req).unwrap();
    assert_eq!(inputs[0], Tensor::from_f32("x", [2, 4], &X));
    assert_eq!(inputs[1], Tensor::from_slice("mask", [2], &[true, false]));
    assert_eq!(plan.id.as_deref(), Some("42"));
    assert_eq!(plan.outputs, Some(vec![("probs".to_owned(), true), ("label".to_owned(), false)]));

    let response = Response::from(&plan.respond("iris".into(), Some("3".into()), model_outputs()));
    assert_eq!(response.header("content-type"), Some("application/octet-stream"));
    let (json, binary) = read_like_tritonclient(&response);
    assert_eq!(
        json,
        json!({"id": "42", "model_name": "iris", "model_version": "3", "outputs": [
            {"name": "probs", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        ]})
    );
    assert_eq!(binary, vec![("probs".to_owned(), le(&[0.1f32, 0.7, 0.2, 0.6, 0.3, 0.1]))]);
}

#[test]
fn tritonclient_without_outputs_gets_every_output_in_binary() {
    // With no `outputs`, tritonclient asks for every output in binary with a request parameter.
    let json = r#"{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}},{"name":"mask","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}],"parameters":{"binary_data_output":true}}"#;
    let (body, header_length) = tritonclient_body(json, &[&le(&X), &[0, 1]]);
    let (inputs, plan) = serve(&http(&[("inference-header-content-length", &header_length)], body)).unwrap();
    assert_eq!(inputs[1].to_vec::<bool>(), Some(vec![false, true]));
    assert_eq!(plan, ResponsePlan { id: None, outputs: None, binary_by_default: true });

    let response = Response::from(&plan.respond("iris".into(), None, model_outputs()));
    let (json, binary) = read_like_tritonclient(&response);
    assert_eq!(
        json["outputs"][1],
        json!({"name": "label", "shape": [2], "datatype": "INT64",
                                          "parameters": {"binary_data_size": 16}})
    );
    assert!(json.get("id").is_none() && json.get("model_version").is_none());
    assert_eq!(binary[0], ("probs".to_owned(), le(&[0.1f32, 0.7, 0.2, 0.6, 0.3, 0.1])));
    assert_eq!(binary[1], ("label".to_owned(), le(&[1i64, 0])));
    let header_length: usize = response.header("inference-header-content-length").unwrap().parse().unwrap();
    assert_eq!(response.body.len(), header_length + 24 + 16);
}

#[test]
fn output_selection_and_plain_json_responses() {
    let input = r#"[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},
                    {"name":"mask","shape":[1],"datatype":"BOOL","data":[true]}]"#;
    let plan_of = |rest: &str| {
        let body = format!(r#"{{"inputs":{input}{rest}}}"#);
        serve(&http(&[], body.into_bytes())).unwrap().1
    };
    // A per-output binary_data overrides the request's binary_data_output, both ways.
    let plan = plan_of(
        r#","parameters":{"binary_data_output":true},"outputs":[{"name":"label","parameters":{"binary_data":false}},{"name":"probs"}]"#,
    );
    assert_eq!(plan.wants("label"), Some(false));
    assert_eq!(plan.wants("probs"), Some(true));
    let plan = plan_of(r#","outputs":[{"name":"label","parameters":{"binary_data":true}}]"#);
    assert_eq!((plan.wants("label"), plan.wants("probs")), (Some(true), None));
    let (json, binary) = read_like_tritonclient(&Response::from(&plan.respond("m".into(), None, model_outputs())));
    assert_eq!(json["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(binary, vec![("label".to_owned(), le(&[1i64, 0]))]);

    // Plain JSON in and out: no binary anywhere, so no Inference-Header-Content-Length.
    for rest in ["", r#","outputs":[]"#, r#","parameters":{"binary_data_output":false}"#] {
        let plan = plan_of(rest);
        let response = Response::from(&plan.respond("m".into(), None, model_outputs()));
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.header("inference-header-content-length"), None);
        let (json, _) = read_like_tritonclient(&response);
        assert_eq!(json["outputs"][1], json!({"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]}));
    }
}

#[test]
fn json_and_binary_inputs_mix() {
    let json = r#"{"inputs":[{"name":"mask","shape":[3],"datatype":"BOOL","data":[[true],[false],[true]]},{"name":"x","shape":[3,4],"datatype":"FP32","parameters":{"binary_data_size":48}}]}"#;
    let x: Vec<f32> = (0..12).map(|i| i as f32 / 4.0).collect();
    let (body, header_length) = tritonclient_body(json, &[&le(&x)]);
    let (inputs, _) = serve(&http(&[("inference-header-content-length", &header_length)], body)).unwrap();
    assert_eq!(inputs[0].to_vec::<bool>(), Some(vec![true, false, true]));
    assert_eq!(inputs[1].to_f32(), Some(x));
    assert_eq!(inputs[1].shape, vec![3, 4]);
}

#[test]
fn empty_binary_tensors() {
    // An empty tensor has binary_data_size 0; tritonclient still sends the header then.
    let json = r#"{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP32","parameters":{"binary_data_size":0}},{"name":"mask","shape":[0],"datatype":"BOOL","parameters":{"binary_data_size":0}}]}"#;
    let (body, header_length) = tritonclient_body(json, &[]);
    let (inputs, _) = serve(&http(&[("inference-header-content-length", &header_length)], body.clone())).unwrap();
    assert!(inputs.iter().all(|input| input.data.is_empty()));
    // Without the header the sizes add up to the (empty) binary part all the same.
    assert!(serve(&http(&[], body)).is_ok());

    let plan = ResponsePlan { id: None, outputs: None, binary_by_default: true };
    let response = plan.respond("m".into(), None, vec![Tensor::from_f32("probs", [0, 3], &[])]);
    let (json, binary) = read_like_tritonclient(&Response::from(&response));
    assert_eq!(json["outputs"][0]["parameters"], json!({"binary_data_size": 0}));
    assert_eq!(binary, vec![("probs".to_owned(), vec![])]);
}

/// Three elements' worth of bytes of `datatype`, every element a valid value (small, not NaN).
fn sample_bytes(datatype: Datatype) -> Vec<u8> {
    if datatype == Datatype::Bool {
        return vec![1, 0, 1];
    }
    (0..3 * datatype.size()).map(|i| i as u8).collect()
}

#[test]
fn every_datatype_round_trips_binary_and_json() {
    for datatype in Datatype::ALL {
        let bytes = sample_bytes(datatype);
        let json = format!(
            r#"{{"inputs":[{{"name":"t","shape":[1,3],"datatype":"{datatype}","parameters":{{"binary_data_size":{}}}}}]}}"#,
            bytes.len()
        );
        let (body, header_length) = tritonclient_body(&json, &[&bytes]);
        let request = InferRequest::from_body(&body, Some(&header_length)).unwrap();
        let tensor = request.tensors().unwrap().remove(0);
        assert_eq!((tensor.datatype, &tensor.shape, &tensor.data), (datatype, &vec![1, 3], &bytes), "{datatype}");

        // Binary out: the same bytes.
        let plan = ResponsePlan { id: None, outputs: None, binary_by_default: true };
        let response = Response::from(&plan.respond("m".into(), None, vec![tensor.clone()]));
        let (_, binary) = read_like_tritonclient(&response);
        assert_eq!(binary[0].1, bytes, "{datatype}");

        // JSON out, and that JSON back in: the same bytes again.
        let plan = ResponsePlan { id: None, outputs: None, binary_by_default: false };
        let (json, _) = read_like_tritonclient(&Response::from(&plan.respond("m".into(), None, vec![tensor])));
        let back = serde_json::to_vec(&json!({"inputs": [{"name": "t", "shape": [1, 3], "datatype": datatype.name(),
                                                          "data": json["outputs"][0]["data"]}]}))
        .unwrap();
        let decoded = InferRequest::from_json(&back).unwrap().tensors().unwrap().remove(0);
        assert_eq!(decoded.data, bytes, "{datatype} via {}", json["outputs"][0]["data"]);
    }
}

/// A tritonclient binary request for the test model, and its header length.
fn binary_request() -> (Vec<u8>, String) {
    let json = r#"{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}},{"name":"mask","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}],"parameters":{"binary_data_output":true}}"#;
    tritonclient_body(json, &[&le(&X), &[1, 1]])
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_and_deflate_bodies() {
    // tritonclient compresses the whole body, binary part included (gzip.compress or
    // zlib.compress), and sends the uncompressed JSON length as Inference-Header-Content-Length.
    let (plain, header_length) = binary_request();
    let expected = serve(&http(&[("inference-header-content-length", &header_length)], plain.clone())).unwrap();
    let cases = [
        ("gzip", gzip(&plain)),
        ("x-gzip", gzip(&plain)),
        ("GZip", gzip(&plain)),
        ("deflate", zlib(&plain)),
        ("deflate", raw_deflate(&plain)),
        ("identity", plain.clone()),
        ("", plain.clone()),
        // Applied in order: deflate, then gzip.
        ("deflate, gzip", gzip(&zlib(&plain))),
        ("gzip,identity", gzip(&plain)),
    ];
    for (encoding, body) in cases {
        let headers = [("content-encoding", encoding), ("inference-header-content-length", &header_length)];
        assert_eq!(serve(&http(&headers, body)).unwrap(), expected, "{encoding}");
    }
    // Concatenated gzip members, as `cat a.gz b.gz` makes them, are one body.
    let (first, second) = plain.split_at(100);
    let mut members = gzip(first);
    members.extend(gzip(second));
    assert_eq!(decode_content_encoding(Some("gzip"), &members, 1 << 20).unwrap(), plain);
    // Without an encoding the body is not copied.
    assert!(matches!(decode_content_encoding(None, &plain, 0).unwrap(), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn decompression_limit() {
    let json = br#"{"inputs":[]}"#;
    for body in [gzip(json), zlib(json)] {
        let encoding = if body[0] == 0x1f { "gzip" } else { "deflate" };
        assert_eq!(decode_content_encoding(Some(encoding), &body, json.len() as u64).unwrap(), &json[..]);
        let err = decode_content_encoding(Some(encoding), &body, json.len() as u64 - 1).unwrap_err();
        assert_eq!((err.status(), err.code()), (413, "payload_too_large"));
        assert_eq!(
            err.message(),
            format!(
                "the request body (Content-Encoding: {encoding}) decompresses to more than {} bytes, the most this \
                 function accepts",
                json.len() - 1
            )
        );
    }
    // A bomb: 64 MiB of zeros in about 64 KiB stops at the limit.
    let bomb = gzip(&vec![0; 64 << 20]);
    assert!(bomb.len() < 128 << 10, "{}", bomb.len());
    let err = decode_content_encoding(Some("gzip"), &bomb, 1 << 20).unwrap_err();
    assert_eq!(err.status(), 413);
    let response = Response::from(err);
    assert_eq!(response.status, 413);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["code"], "payload_too_large");
}

#[test]
fn bad_encodings() {
    let (plain, _) = binary_request();
    let message = |encoding: &str, body: &[u8]| {
        let err = decode_content_encoding(Some(encoding), body, 1 << 20).unwrap_err();
        assert_eq!((err.status(), err.code()), (400, "invalid_input"), "{encoding}");
        err.message().to_owned()
    };
    assert_eq!(
        message("br", &plain),
        "unsupported Content-Encoding \"br\": this function accepts gzip, deflate or identity"
    );
    // An unknown coding anywhere in the list is refused before anything is decompressed.
    assert_eq!(
        message("compress, gzip", &gzip(&plain)),
        "unsupported Content-Encoding \"compress\": this function accepts gzip, deflate or identity"
    );
    assert!(
        message("gzip", &plain).starts_with("cannot decompress the request body (Content-Encoding: gzip): "),
        "{}",
        message("gzip", &plain)
    );
    let mut truncated = gzip(&plain);
    truncated.truncate(truncated.len() / 2);
    assert!(message("gzip", &truncated).starts_with("cannot decompress the request body (Content-Encoding: gzip)"));
    let mut corrupt = zlib(&plain);
    let middle = corrupt.len() / 2;
    corrupt[middle..].fill(0xff);
    assert!(message("deflate", &corrupt).starts_with("cannot decompress the request body (Content-Encoding: deflate)"));
    // Through the whole path, too.
    assert_eq!(
        serve_error(&[("content-encoding", "zstd")], plain),
        "unsupported Content-Encoding \"zstd\": this function accepts gzip, deflate or identity"
    );
}

#[test]
fn malformed_binary_framing() {
    let (body, header_length) = binary_request();
    let with_header = |value: &str| serve_error(&[("inference-header-content-length", value)], body.clone());
    assert_eq!(
        with_header("abc"),
        "Inference-Header-Content-Length \"abc\" is not a number of bytes: it gives the length of the JSON part \
         of the body"
    );
    assert!(with_header("-1").starts_with("Inference-Header-Content-Length \"-1\" is not a number"));
    assert_eq!(
        with_header(&(body.len() + 1).to_string()),
        format!("Inference-Header-Content-Length is {} but the body has only {} bytes", body.len() + 1, body.len())
    );
    // A header length that cuts the JSON short.
    let short = with_header("40");
    assert!(short.starts_with("invalid OIP infer request JSON: EOF while parsing"), "{short}");
    assert!(short.ends_with("(in the JSON header, the first Inference-Header-Content-Length bytes of the body)"));
    // Binary data but no header: the JSON parser meets the bytes.
    let missing = serve_error(&[], body.clone());
    assert!(missing.starts_with("invalid OIP infer request JSON: trailing characters"), "{missing}");
    assert!(
        missing.ends_with(
            "(a body with binary tensor data after the JSON needs an Inference-Header-Content-Length header)"
        )
    );
    // Truncated, and longer than declared.
    assert_eq!(
        serve_error(&[("inference-header-content-length", &header_length)], &body[..body.len() - 1]),
        "the binary tensor data is truncated: input \"mask\" (binary_data_size 2) needs bytes 32..34 after the \
         JSON header, but only 33 bytes follow it"
    );
    assert_eq!(
        serve_error(
            &[("inference-header-content-length", &header_length)],
            &body[..header_length.parse::<usize>().unwrap() + 10]
        ),
        "the binary tensor data is truncated: input \"x\" (binary_data_size 32) needs bytes 0..32 after the JSON \
         header, but only 10 bytes follow it"
    );
    let mut longer = body.clone();
    longer.extend_from_slice(&[0; 5]);
    assert_eq!(
        serve_error(&[("inference-header-content-length", &header_length)], longer),
        "39 bytes of binary tensor data follow the JSON header, but the inputs' binary_data_size parameters add \
         up to 34"
    );
    // binary_data_size without any binary part.
    let json = r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}},{"name":"mask","shape":[1],"datatype":"BOOL","data":[true]}]}"#;
    assert_eq!(
        serve_error(&[], json),
        "input \"x\" has binary_data_size 16 but the request has no binary tensor data: send it after the JSON and \
         give the JSON's length in the Inference-Header-Content-Length header"
    );
}

/// The error for a request whose JSON header is `json`, followed by `binary`.
fn binary_error(json: &str, binary: &[u8]) -> String {
    let (body, header_length) = tritonclient_body(json, &[binary]);
    serve_error(&[("inference-header-content-length", &header_length)], body)
}

#[test]
fn malformed_binary_inputs() {
    let mask = r#"{"name":"mask","shape":[2],"datatype":"BOOL","data":[true,false]}"#;
    let x = |parameters: &str| {
        format!(r#"{{"inputs":[{{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{parameters}}},{mask}]}}"#)
    };
    assert_eq!(
        binary_error(&x(r#"{"binary_data_size":28}"#), &[0; 28]),
        "input \"x\": binary_data_size is 28 bytes but shape [2, 4] of FP32 needs 32 (8 elements of 4 bytes)"
    );
    for bad in ["-1", "1.5", "\"32\"", "true"] {
        assert_eq!(
            binary_error(&x(&format!(r#"{{"binary_data_size":{bad}}}"#)), &[0; 32]),
            format!("input \"x\": parameter binary_data_size must be a non-negative integer (bytes), not {bad}")
        );
    }
    let both = format!(
        r#"{{"inputs":[{{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4],"parameters":{{"binary_data_size":16}}}},{mask}]}}"#
    );
    assert_eq!(
        binary_error(&both, &[0; 16]),
        "input \"x\" has both \"data\" and a binary_data_size parameter: send one or the other"
    );
    let bools = r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"mask","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}]}"#;
    assert_eq!(binary_error(bools, &[1, 0, 2]), "input \"mask\": BOOL element 2 is byte 2, expected 0 or 1");
    // Deserialized directly, without from_body: the binary data was never attached.
    let text = x(r#"{"binary_data_size":32}"#);
    let direct: InferRequest = serde_json::from_str(&text).unwrap();
    assert_eq!(
        direct.tensors().unwrap_err().message(),
        "input \"x\": has a binary_data_size parameter but no binary data: parse the body with \
         InferRequest::from_body"
    );
}

#[test]
fn extension_parameters_are_checked() {
    let inputs = r#""inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"mask","shape":[1],"datatype":"BOOL","data":[true]}]"#;
    let error = |rest: &str| serve_error(&[], format!("{{{inputs}{rest}}}"));
    assert_eq!(
        error(r#","parameters":{"binary_data_output":"yes"}"#),
        "the request: parameter binary_data_output must be true or false, not \"yes\""
    );
    assert_eq!(
        error(r#","outputs":[{"name":"probs","parameters":{"binary_data":1}}]"#),
        "requested output \"probs\": parameter binary_data must be true or false, not 1"
    );
    assert_eq!(
        error(
            r#","outputs":[{"name":"probs","parameters":{"shared_memory_region":"r","shared_memory_byte_size":24}}]"#
        ),
        "requested output \"probs\": shared memory (shared_memory_region) is not supported; send the data in the \
         request body"
    );
    assert_eq!(
        error(r#","outputs":[{"name":"probs","parameters":{"classification":2,"binary_data":true}}]"#),
        "requested output \"probs\": the classification extension is not supported"
    );
    let shared = r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"shared_memory_region":"in","shared_memory_byte_size":16}}]}"#;
    assert_eq!(
        serve_error(&[], shared),
        "input \"x\": shared memory (shared_memory_region) is not supported; send the data in the request body"
    );
    // null is absent; other parameters pass through.
    assert!(
        serve(&http(
            &[],
            format!(r#"{{{inputs},"parameters":{{"binary_data_output":null,"priority":1}}}}"#).into_bytes()
        ))
        .is_ok()
    );
}

#[test]
fn validation_against_the_model() {
    let mask = r#"{"name":"mask","shape":[2],"datatype":"BOOL","data":[true,false]}"#;
    let x = r#"{"name":"x","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8]]}"#;
    let error = |inputs: &[&str], rest: &str| serve_error(&[], format!(r#"{{"inputs":[{}]{rest}}}"#, inputs.join(",")));
    assert_eq!(
        error(&[x, mask, r#"{"name":"z","shape":[1],"datatype":"FP32","data":[1]}"#], ""),
        "unknown input \"z\": the model's inputs are \"x\", \"mask\""
    );
    assert_eq!(error(&[x], ""), "missing input \"mask\": the model's inputs are \"x\", \"mask\"");
    assert_eq!(error(&[], ""), "missing inputs \"x\", \"mask\": the model's inputs are \"x\", \"mask\"");
    assert_eq!(error(&[x, mask, x], ""), "input \"x\" is given more than once");
    assert_eq!(
        error(&[r#"{"name":"x","shape":[2,4],"datatype":"INT64","data":[[1,2,3,4],[5,6,7,8]]}"#, mask], ""),
        "input \"x\" is FP32 in the model; the request says INT64"
    );
    assert_eq!(
        error(&[r#"{"name":"x","shape":[8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}"#, mask], ""),
        "input \"x\" has shape [8] (rank 1); the model expects [-1, 4] (rank 2, -1 matching any size)"
    );
    assert_eq!(
        error(&[r#"{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}"#, mask], ""),
        "input \"x\" has shape [2, 3]; the model expects [-1, 4]: dimension 1 is 3, the model's is 4 (-1 matches \
         any size)"
    );
    assert_eq!(
        error(&[r#"{"name":"x","shape":[-1,4],"datatype":"FP32","data":[1,2,3,4]}"#, mask], ""),
        "input \"x\": shape [-1, 4] has a negative dimension"
    );
    assert_eq!(
        error(&[r#"{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7]}"#, mask], ""),
        "input \"x\": shape [2, 4] holds 8 elements but \"data\" has 7"
    );
    assert_eq!(
        error(&[x, r#"{"name":"mask","shape":[1],"datatype":"BYTES","data":["yes"]}"#], ""),
        "input \"mask\": BYTES tensors are not supported: the models here take numeric tensors (BOOL, UINT8, \
         UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64)"
    );
    assert!(
        error(&[r#"{"name":"x","shape":[2,4],"datatype":"BF16","data":[]}"#, mask], "")
            .starts_with("input \"x\": unknown datatype \"BF16\" (expected one of BOOL, UINT8, ")
    );
    assert_eq!(
        error(&[x, mask], r#","outputs":[{"name":"probs"},{"name":"logits"}]"#),
        "requested output \"logits\" is not an output of the model: its outputs are \"probs\", \"label\""
    );
    assert_eq!(
        error(&[x, mask], r#","outputs":[{"name":"probs"},{"name":"probs","parameters":{"binary_data":false}}]"#),
        "output \"probs\" is requested more than once"
    );
    // Any batch size fits -1; order of the inputs does not matter.
    let ok = format!(r#"{{"inputs":[{mask},{x}],"outputs":[{{"name":"label"}}]}}"#);
    let (inputs, plan) = serve(&http(&[], ok.into_bytes())).unwrap();
    assert_eq!(inputs[1].to_f32().unwrap().len(), 8);
    assert_eq!(plan.outputs, Some(vec![("label".to_owned(), false)]));
}

#[test]
fn error_statuses() {
    let invalid = Response::from(OipError::new("bad"));
    assert_eq!(invalid.status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&invalid.body).unwrap(),
        json!({"error": "bad", "code": "invalid_input"})
    );
    let large = Response::from(OipError::too_large("big"));
    assert_eq!(large.status, 413);
    assert_eq!(
        serde_json::from_slice::<Value>(&large.body).unwrap(),
        json!({"error": "big", "code": "payload_too_large"})
    );
}

#[test]
fn metadata_platform() {
    let mut metadata = ModelMetadata::new("iris", vec!["2".into()], &signature());
    metadata.platform = Some("onnx".into());
    let json = serde_json::to_value(&metadata).unwrap();
    assert_eq!(json["platform"], "onnx");
    assert_eq!(json["versions"], json!(["2"]));
    assert_eq!(serde_json::from_value::<ModelMetadata>(json).unwrap(), metadata);
}
