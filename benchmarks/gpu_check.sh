#!/usr/bin/env bash
# The GPU path, proven in one short run on a machine with CUDA (about 6 minutes on an H200).
# Needs Python with PyTorch (CUDA build), NumPy, scikit-learn, SciPy, Rich and safetensors; nothing is downloaded.
# MNIST comes from $DIGITLAB_MNIST_SOURCE (a folder with the four .gz IDX files), default ../shared/data/mnist.
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-output}"
mkdir -p "$out"
source_dir="${DIGITLAB_MNIST_SOURCE:-../shared/data/mnist}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'; print(torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
timeout 180 python3 -m pytest -q -p no:cacheprovider -rs --tb=short tests/test_cnn_graph.py tests/test_cnn.py \
    -k "cuda or device or graph" \
    > "$out/pytest.txt" 2>&1 || true  # the whole output: a failure's reason is in $out/pytest.txt
tail -4 "$out/pytest.txt"
python3 benchmarks/bench_mnist_gpu.py --mnist-dir "$source_dir" --json "$out/gpu_check.json" "${@:2}" 2>&1 | tee "$out/gpu_check.txt"
