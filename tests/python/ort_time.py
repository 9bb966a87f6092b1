"""Times onnxruntime in process on one model, for the cnn bench: the same input maas runs
(FP32, seeded by the bench and passed as raw little-endian bytes on stdin).

Usage: ort_time.py MODEL.onnx RUNS THREADS < input.bin. Prints one JSON line: p50 and p99 of
RUNS runs after 3 warm-up runs, in microseconds, and the first output's values.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
spec = session.get_inputs()[0]
x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32).reshape(spec.shape)
for _ in range(3):
    session.run(None, {spec.name: x})
times = []
for _ in range(runs):
    started = time.perf_counter()
    output = session.run(None, {spec.name: x})[0]
    times.append((time.perf_counter() - started) * 1e6)
times.sort()
p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
print(json.dumps({"p50": times[len(times) // 2], "p99": p99, "output": output.ravel().tolist()}))
