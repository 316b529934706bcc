#!/usr/bin/env bash
# The GPU check of issue 9, for a machine with an NVIDIA GPU, cupy and a CUDA build of torch
# (under 5 minutes on one H100). From the repository root, in an environment made with
#   pip install -e '.[test,cuda12]'   # or cuda13, to match the driver's CUDA
#   pip install torch                 # a CUDA build
# run
#   bash benchmarks/gpu_check.sh      # writes benchmarks/results/gpu_check.md
#
# 1. the engine gradcheck suite and the shared semantics suite on "cuda" (the same tests CI
#    runs on the seam's test double), the seam's own tests and GPU sessions on a server;
# 2. benchmarks/gpu_mlp.py: one MLP training step, small and large, engine in-process and a
#    remote session against torch CUDA, with the issue's targets.
#
# --fake runs the same stages on the test double (GRADSERVE_FAKE_CUDA=2), with a tiny MLP and
# without torch CUDA: it checks this script, not a GPU (tests/e2e/test_gpu_check.py).
# --quick runs only the seam's and the server's GPU tests in stage 1.
set -euo pipefail
cd "$(dirname "$0")/.."

fake=0 quick=0
for arg in "$@"; do
  case "$arg" in
    --fake) fake=1 ;;
    --quick) quick=1 ;;
    *) echo "usage: $0 [--fake] [--quick]" >&2; exit 2 ;;
  esac
done
out=benchmarks/results/gpu_check.md
mlp_args=(--sizes small,large)
if [ "$fake" = 1 ]; then
  export GRADSERVE_FAKE_CUDA=2
  # the test double is the package `cupy` of tests/fakecuda (see tests/conftest.py)
  export PYTHONPATH="$PWD/tests/fakecuda${PYTHONPATH:+:$PYTHONPATH}"
  out=${GPU_CHECK_OUT:-$(mktemp -d)/gpu_check.md}
  mlp_args=(--sizes tiny --rounds 2 --steps 1 --torch-device cpu)
else
  export GRADSERVE_FAKE_CUDA=0  # the real device, never the test double
fi

python - <<'PY'
import sys
from gradserve.engine.core.backend import cuda_device_count, cuda_module
try:
    cuda_module()
except Exception as e:
    sys.exit(f"gpu_check: {e}")
if cuda_device_count() == 0:
    sys.exit("gpu_check: cupy sees no GPU")
PY

mkdir -p "$(dirname "$out")"
{
  echo "# gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    || echo "(no nvidia-smi)"
  python -c "import cupy, sys; print('cupy', cupy.__version__, 'python', sys.version.split()[0])" \
    2>/dev/null || echo "cupy: the test double"
  echo '```'
} > "$out"

stage() {  # stage NAME CMD...: run it, keep the output's tail and the time it took
  local name=$1 start rc
  shift
  start=$(date +%s)
  echo "== $name"
  set +e
  "$@" 2>&1 | tee /tmp/gpu_check_stage.$$
  rc=${PIPESTATUS[0]}
  set -e
  {
    echo; echo "## $name ($(( $(date +%s) - start )) s, exit $rc)"; echo
    echo "\`$*\`"; echo; echo '```'; tail -n 40 /tmp/gpu_check_stage.$$; echo '```'
  } >> "$out"
  rm -f /tmp/gpu_check_stage.$$
  return "$rc"
}

tests=(tests/engine/test_devices.py tests/server/test_gpu.py)
if [ "$quick" = 0 ]; then
  tests+=(tests/engine/test_gradcheck.py tests/shared)
fi
status=0
# -k cuda: the gradcheck cases' and the semantics suite's CUDA runs (their CPU runs are CI's)
stage "suites on cuda" python -m pytest -q -p no:cacheprovider "${tests[@]}" \
  -k "cuda or test_devices or test_gpu" || status=1
stage "gpu_mlp" python benchmarks/gpu_mlp.py "${mlp_args[@]}" || status=1
echo "gpu_check: report in $out"
exit "$status"
