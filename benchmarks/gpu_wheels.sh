#!/usr/bin/env bash
# Makes .whl/ (ignored by git): the pure-Python wheels Sapicore needs that the GPU machine's image
# lacks (nixio, tree-config, ruamel.yaml, tensorboardX; torch, Triton, numpy, h5py, matplotlib, attrs,
# tqdm and protobuf are there). That machine reaches no registry: carry .whl with the working tree and
# benchmarks/gpu_check.sh installs it offline. Run here, where pip reaches the registry:
#   bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl
mkdir .whl
python -m pip wheel --quiet --no-deps --wheel-dir .whl nixio tree-config "ruamel.yaml>=0.17,<0.20" tensorboardX
ls .whl
