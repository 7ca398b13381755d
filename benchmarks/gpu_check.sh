#!/usr/bin/env bash
# The GPU check of the performance issue, in one command (< 8 min on one H200):
#   1. lossfns parity --device cuda   (every loss, every backend that sees the GPU, float64)
#   2. python -m benchmarks --device cuda, full-size cases, torch eager, JAX jit, MONAI,
#      smp, naive and floor; then torch.compile for the region losses, merged in.
# Everything goes to $OUT (set by the device runner) or else benchmarks/results/cuda/:
# parity.txt, parity.json, results.{json,md,png}, gpu_check.log (at most 8 flat files).
#
# The GPU machine has torch, JAX and matplotlib but no network: the packages it lacks
# (array-api-compat, array-api-strict, monai, segmentation-models-pytorch) travel as wheels
# in .whl/ (see /work/.library/device/README.md); they are installed only when missing.
# DEVICE=cpu and QUICK=1 make a dry run on a machine without a GPU (PARITY_ARGS narrows parity).
set -u -o pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/benchmarks/results/cuda}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
START=$SECONDS
log() { echo "[gpu_check $((SECONDS - START)) s] $*" | tee -a "$LOG"; }

if ! "$PYTHON" -c "import array_api_compat, monai" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/lossfns_site .whl/*.whl 2>&1 | tee -a "$LOG"
    export PYTHONPATH=/tmp/lossfns_site${PYTHONPATH:+:$PYTHONPATH}
fi

# The sources as the installed package lays them out (adapters/ is lossfns.adapters), so
# that no install of lossfns itself is needed.
STAGE=$(mktemp -d)
cp -r lossfns benchmarks "$STAGE/"
cp -r adapters "$STAGE/lossfns/adapters"
export PYTHONPATH=$STAGE${PYTHONPATH:+:$PYTHONPATH}
# The copy has no git history: the commit is read here, or given (the device may lack git).
LOSSFNS_SOURCE=${LOSSFNS_SOURCE:-"$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    git -C "$REPO" status --porcelain -- lossfns adapters 2>/dev/null | grep -q . && echo +dirty)"}
export LOSSFNS_SOURCE
cd "$STAGE"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
    "$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    "$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tail -1
} 2>&1 | tee -a "$LOG"

log "parity --device $DEVICE"
# shellcheck disable=SC2086  # PARITY_ARGS (default none) narrows a dry run
timeout 150 "$PYTHON" -m lossfns parity --device "$DEVICE" ${PARITY_ARGS:-} --no-progress --timeout 140 \
    --json "$OUT/parity.json" >"$OUT/parity.txt" 2>>"$LOG"
PARITY=$?
tail -n 1 "$OUT/parity.txt" | tee -a "$LOG"
log "parity exit status $PARITY"

SIZE=()
REPEATS=(--warmup 2 --repeats 5 --min-time 0.2)
if [ "$QUICK" = 1 ]; then SIZE=(--quick); REPEATS=(--warmup 1 --repeats 1 --min-time 0); fi
# One stage per group of cases, merged into results.json; results.json is saved after every
# (case, contender), so a stage cut short by its timeout keeps what it measured.
MERGE=()
for STAGE_ARGS in "--cases 2d,3d" "--cases 2d_bf16,3d_bf16" "--cases 3d16_sparse,3d16_onehot" \
                  "--contenders lossfns_compile --losses dice,tversky"; do
    case "$STAGE_ARGS" in
        *compile*) LIMIT=60; WHO=() ;;
        *) LIMIT=75; WHO=(--contenders lossfns_torch,lossfns_jax,monai,smp,naive,floor) ;;
    esac
    log "benchmarks --device $DEVICE ${SIZE[*]} $STAGE_ARGS"
    # shellcheck disable=SC2086  # STAGE_ARGS is split into flags on purpose
    timeout "$LIMIT" "$PYTHON" -m benchmarks --device "$DEVICE" --in-process "${SIZE[@]}" "${REPEATS[@]}" \
        "${MERGE[@]}" "${WHO[@]}" $STAGE_ARGS --out-dir "$OUT" 2>&1 | tee -a "$LOG"
    log "stage exit status $?"
    [ -f "$OUT/results.json" ] && MERGE=(--merge)
done
"$PYTHON" -m benchmarks --report-only --out-dir "$OUT" 2>&1 | tee -a "$LOG"
BENCH=$?
rm -rf "$STAGE"
log "done"
[ "$PARITY" -le 1 ] && [ "$BENCH" = 0 ]
