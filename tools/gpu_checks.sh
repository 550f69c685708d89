#!/usr/bin/env bash
# The checks that need a GPU, run from the repository root on a CUDA machine (CI has none):
#   bash tools/gpu_checks.sh tests        # the whole suite; the CUDA tests run instead of being skipped
#   bash tools/gpu_checks.sh bench        # the _cuda benchmarks -> benchmarks/results/*_cuda.json
# Uses the installed torch with the sources on PYTHONPATH (no install needed).
set -euo pipefail
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
case "${1:-tests}" in
  tests) python3 -m pytest -q -rs -m "not slow" -p no:cacheprovider tests ;;
  bench)
    for module in "${@:2}"; do python3 -m "benchmarks.$module" --device cuda; done
    ;;
  *) echo "usage: bash tools/gpu_checks.sh tests | bench MODULE..." >&2; exit 2 ;;
esac
