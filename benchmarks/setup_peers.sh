#!/usr/bin/env bash
# A benchmark-only environment with snnTorch and Norse (and Sapicore with its nir extra) for
# benchmarks/nir_exchange.py; Sapicore never imports either.
# Usage: bash benchmarks/setup_peers.sh [DIR]   then   DIR/bin/python benchmarks/nir_exchange.py
set -euo pipefail
dir=${1:-.peers-env}
here=$(cd "$(dirname "$0")/.." && pwd)
python -m venv "$dir"
"$dir/bin/pip" install --quiet "torch==$(python -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || echo 2.13.0)"
"$dir/bin/pip" install --quiet "snntorch==1.0.0" "norse==1.1.0" -e "$here[nir]"
"$dir/bin/python" -c "import snntorch, norse; print('snnTorch', snntorch.__version__, 'and Norse', norse.__version__, 'ready in $dir')"
