#!/usr/bin/env bash
# Issue 6's GPU measurements in one run that fits a 10-minute slot on a lent GPU machine.
#
#   bash benchmarks/gpu_check.sh --wheels    # here, once: wheels of what the GPU image lacks
#   bash benchmarks/gpu_check.sh             # there: the checks; 4 JSON files and a log in $OUT
#
# The GPU image has torch, sentencepiece, sacrebleu and tensorboard but not pytorch-ignite,
# datasets (and the two of its needs it lacks) or tomli-w, and cannot download: --wheels saves
# them into .whl/ (add `/.whl/` to .git/info/exclude; it travels when named in the run's carry).
# In order, each step's output is kept even when a later one fails:
#   1. an end-to-end tiny run on CUDA: pretrain, train, sample, evaluate (the CUDA path works);
#   2. the bf16 and compiled-step tests on CUDA (`pytest ... --device cuda`: bf16 losses within
#      1% of fp32, the compiled soft step equal to the eager one);
#   3. host synchronisations per iteration as CUDA counts them (benchmarks/host_syncs.py);
#   4. the throughput table in fp32, in bf16, and with the compiled soft step (throughput.py).
# DEVICE=cpu PRESET=tiny ITERATIONS=3 runs the same steps on a CPU, to check the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--wheels" ]]; then
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl \
        pytorch-ignite==0.5.5 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
        tomli-w==1.2.0 fsspec==2026.9.0
    exit
fi

device=${DEVICE:-cuda}
preset=${PRESET:-default}
iterations=${ITERATIONS:-50}
out=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/textgan-site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/textgan-site"
fi
work=$(mktemp -d)
export HF_DATASETS_CACHE="$work/hf-cache" TEXTGAN_SYNTHETIC_ROOT="$work/corpora"
status=0

# one log for every step: the device machine returns at most 8 files
log="$out/gpu_check.log"
: >"$log"

step() {  # step NAME COMMAND...: run it, append its output to the log, remember a failure
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$log"
    local start=$SECONDS
    if ! "$@" >"$work/step.log" 2>&1; then
        echo "   FAILED:"
        status=1
    fi
    cat "$work/step.log" >>"$log"
    tail -n 15 "$work/step.log"
    echo "   ($((SECONDS - start)) s)" | tee -a "$log"
}

python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
          torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
tiny=(--preset tiny --no-progress --device "$device" --run-dir "$work/run")
step tiny_pretrain python3 -m textgan.pretrain "${tiny[@]}"
step tiny_train python3 -m textgan.train "${tiny[@]}"
step tiny_sample python3 -m textgan.sample --run-dir "$work/run" --device "$device" --n 4
step tiny_evaluate python3 -m textgan.evaluate --run-dir "$work/run" --device "$device" \
    --no-progress --no-curve
step cuda_tests python3 -m pytest -q -p no:cacheprovider tests/test_precision.py \
    tests/test_soft_step.py --device "$device"
step host_syncs python3 -m benchmarks.host_syncs --preset "$preset" --device "$device" \
    --out "$out/host_syncs.json"
bench=(python3 -m benchmarks.throughput --preset "$preset" --device "$device"
       --iterations "$iterations" --samples 5000)
step throughput_fp32 "${bench[@]}" --out "$out/throughput_fp32.json"
step throughput_bf16 "${bench[@]}" --set pretrain.precision=bf16 --set train.precision=bf16 \
    --out "$out/throughput_bf16.json"
step throughput_compiled "${bench[@]}" --set train.compile_soft_step=true --warmup 20 \
    --out "$out/throughput_compiled.json"
rm -rf "$work"
exit $status
