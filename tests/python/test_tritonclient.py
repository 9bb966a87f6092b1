"""Drives a running maas server with the stock `tritonclient[http]` package.

Run by `cargo run -p maas-tests --bin oip-check`, which starts the server, uploads the models,
computes the expected outputs with tract and passes them here in a fixture file:

    python test_tritonclient.py FIXTURE.json

The fixture: {"url": "127.0.0.1:PORT", "key": "...", "cases": [{"model", "version",
"inputs": [{"name", "datatype", "shape", "data"}], "expected": {"<output>": {"datatype",
"shape", "data"}}}]}. Exits non-zero on the first mismatch.
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def infer(client, headers, case, binary, compression=None):
    inputs = []
    for spec in case["inputs"]:
        array = np.array(spec["data"], dtype=NUMPY[spec["datatype"]]).reshape(spec["shape"])
        tensor = httpclient.InferInput(spec["name"], spec["shape"], spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in case["expected"]]
    result = client.infer(
        case["model"],
        inputs,
        model_version=case.get("version", ""),
        outputs=outputs,
        request_id="tritonclient-1",
        # tritonclient adds its own headers to the dict it is given: a fresh one per call.
        headers=dict(headers),
        request_compression_algorithm=compression,
    )
    check(result.get_response()["id"] == "tritonclient-1", "id not echoed")
    for name, want in case["expected"].items():
        got = result.as_numpy(name)
        check(got is not None, f"{case['model']}: no output {name}")
        expected = np.array(want["data"], dtype=NUMPY[want["datatype"]]).reshape(want["shape"])
        check(list(got.shape) == want["shape"], f"{name}: shape {got.shape} != {want['shape']}")
        check(got.dtype == expected.dtype, f"{name}: dtype {got.dtype} != {expected.dtype}")
        if np.issubdtype(expected.dtype, np.floating):
            diff = float(np.max(np.abs(got - expected)))
            check(diff <= 1e-5, f"{name}: max abs diff {diff} vs tract")
        else:
            check(np.array_equal(got, expected), f"{name}: {got} != tract's {expected}")


def main():
    with open(sys.argv[1]) as f:
        fixture = json.load(f)
    client = httpclient.InferenceServerClient(url=fixture["url"])
    headers = {"Authorization": f"Bearer {fixture['key']}"}

    check(client.is_server_live(), "server not live")
    check(client.is_server_ready(), "server not ready")
    meta = client.get_server_metadata(headers=headers)
    check("binary_tensor_data" in meta["extensions"], f"server metadata: {meta}")

    for case in fixture["cases"]:
        model, version = case["model"], case.get("version", "")
        check(client.is_model_ready(model, version, headers=headers), f"{model} not ready")
        meta = client.get_model_metadata(model, version, headers=headers)
        check(meta["name"] == model, f"metadata: {meta}")
        names = {i["name"] for i in meta["inputs"]}
        check(names == {i["name"] for i in case["inputs"]}, f"{model} inputs {names}")
        infer(client, headers, case, binary=False)
        infer(client, headers, case, binary=True)
        infer(client, headers, case, binary=True, compression="gzip")
        infer(client, headers, case, binary=False, compression="deflate")
        print(f"ok: {model} version {version or 'latest'}: JSON, binary, gzip and deflate match tract")

    # Errors come back as exceptions carrying the server's message.
    bad = httpclient.InferInput("input", [1, 99], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 99), dtype=np.float32), binary_data=True)
    try:
        client.infer("mlp", [bad], headers=dict(headers))
        raise AssertionError("a wrong shape was accepted")
    except InferenceServerException as e:
        check("99" in e.message() and "100" in e.message(), f"wrong shape message: {e.message()}")
        print(f"ok: wrong shape refused: {e.message()}")
    try:
        client.get_model_metadata("no-such-model", headers=headers)
        raise AssertionError("a missing model was found")
    except InferenceServerException as e:
        check("no-such-model" in e.message(), f"missing model message: {e.message()}")
    try:
        httpclient.InferenceServerClient(url=fixture["url"]).get_model_metadata("mlp")
        raise AssertionError("no key was accepted")
    except InferenceServerException as e:
        check(e.status() == "401", f"no key: status {e.status()}")
    check(client.is_server_live(), "server not live after the errors")
    print("ok: errors")


if __name__ == "__main__":
    main()
