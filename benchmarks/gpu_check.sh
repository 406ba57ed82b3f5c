#!/usr/bin/env bash
# The GPU checks in one go: CUDA tests, the Non-local block and whole-model benchmarks, and a
# short training run with 16 loader workers (the share of each step spent waiting for data).
# Run from the repository root on a machine with CUDA, after `pip install -e ".[dev]"`:
#     bash benchmarks/gpu_check.sh [OUT_DIR]
# Each step has its own time limit so one slow step cannot starve the others; logs go to OUT_DIR.
set -u
out=${1:-runs/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start))s"
}

nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
echo "cores: $(nproc); /dev/shm: $(df -h /dev/shm | awk 'NR == 2 {print $2}')"
# Most wanted first: the kernel rule (every shape, each softmax kernel forced), the model's
# clips/s, the loader workers against it, the CUDA tests; compilation (slow) last.
step nonlocal_bf16 150 python3 benchmarks/nonlocal.py --device cuda --dtype bf16 --shapes full --maths both --kernels --repeats 5
step nonlocal_fp32 90 python3 benchmarks/nonlocal.py --device cuda --dtype fp32 --shapes full --maths both --kernels --repeats 5
step model 150 python3 benchmarks/model.py --device cuda --variants fp32 bf16 bf16-cl3d
step gpu_box 180 python3 benchmarks/gpu_box.py --workers 16 --steps 120 --alone-batches 48 --alone-workers 1,4,16  # data wait
step gpu_tests 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests
step model_compile 240 python3 benchmarks/model.py --device cuda --variants bf16-cl3d-compile
