"""The FastAPI + onnxruntime peer of the platform and cnn benches: one ONNX model behind one
uvicorn worker, OIP JSON in and out (orjson), as a Python team would serve it. A request with
`inference-header-content-length` carries its tensor as raw bytes after the JSON header (the
OIP binary tensor data extension), as maas accepts it too.

Usage: fastapi_peer.py MODEL.onnx. onnxruntime uses `ORT_THREADS` threads per run (default:
its own, one per core). It listens on a free loopback port, prints `127.0.0.1:PORT`, and
serves until its stdin closes (the bench's protocol for its servers).
"""

import os
import socket
import sys
import threading

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

options = ort.SessionOptions()
if os.environ.get("ORT_THREADS"):
    options.intra_op_num_threads = int(os.environ["ORT_THREADS"])
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
output_name = session.get_outputs()[0].name
app = FastAPI()


@app.post("/{path:path}")
async def infer(request: Request, path: str) -> Response:
    body = await request.body()
    header_length = request.headers.get("inference-header-content-length")
    if header_length is None:
        tensor = orjson.loads(body)["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    else:
        tensor = orjson.loads(body[: int(header_length)])["inputs"][0]
        x = np.frombuffer(body[int(header_length) :], dtype=np.float32).reshape(tensor["shape"])
    y = session.run([output_name], {input_name: x})[0]
    output = {"name": output_name, "shape": list(y.shape), "datatype": "FP32", "data": y.ravel().tolist()}
    return Response(orjson.dumps({"model_name": "model", "outputs": [output]}), media_type="application/json")


def stop_when_stdin_closes() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Connections accepted from it inherit TCP_NODELAY (Linux): without it, an answer written in
    # two parts waits out the client's delayed ACK, 40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the address is printed: the bench connects as soon as it reads it.
    sock.listen(1024)
    print(f"127.0.0.1:{sock.getsockname()[1]}", flush=True)
    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
