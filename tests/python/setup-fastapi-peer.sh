#!/usr/bin/env bash
# Sets up the FastAPI + onnxruntime peer of the platform bench in target/fastapi-venv (pinned
# versions, from the package registry); `cargo bench -p maas-tests --bench platform` then runs
# it beside maas. Run from the repository's root.
set -euo pipefail
python3 -m venv --clear target/fastapi-venv
target/fastapi-venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/fastapi-requirements.txt
echo "FastAPI peer ready: target/fastapi-venv/bin/python tests/python/fastapi_peer.py MODEL.onnx"
