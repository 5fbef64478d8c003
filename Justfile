# One-line recipes; the logic lives in Python (cartoonize/, train/), where it is tested.

set positional-arguments

# create .venv with the CPU build of torch and the dev tools
setup:
    python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[dev]'

# the whole test suite (GPU/TensorRT tests skip without the hardware)
test *args:
    .venv/bin/python -m pytest -q "$@"

# lint and format check
lint:
    .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

# format the code
fmt:
    .venv/bin/ruff format . && .venv/bin/ruff check --fix .

# cartoonize a real clip from ../shared with the Hayao style on this machine
demo:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/cartoonize video ../shared/media/sintel_5s.mp4 sintel_cartoon.mp4 --max-side 160 --overwrite

# inference and end-to-end speed on this machine, printed and written as JSON
bench *args:
    .venv/bin/python -m cartoonize.measure.benchmarks "$@"

# light-paprika (../shared/models, imported) beside Hayao on this machine, in one run, with ratios
bench-imported *args:
    export CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) && .venv/bin/cartoonize models add ../shared/models/light_paprika.onnx --name light-paprika --force && .venv/bin/python -m cartoonize.measure.benchmarks --sizes 180x320,360x640 --styles hayao,light-paprika --engines onnxruntime "$@"

# on a GPU machine: pytest -m gpu and the GPU benchmarks, a table last, full results in gpu-check-out/ (see tests/gpu_check.py)
gpu-check:
    python3 -m tests.gpu_check --out gpu-check-out
