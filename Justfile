# One-line recipes; the logic lives in Python (cartoonize/, train/), where it is tested.

set positional-arguments

# create .venv with the CPU build of torch and the dev tools
setup:
    python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[dev]'

# the test suite without the slow tests (GPU/TensorRT tests skip without the hardware)
test *args:
    .venv/bin/python -m pytest -q "$@"

# every test, the slow ones too (real AOTInductor builds, training curves, the real weights end to end)
test-all *args:
    .venv/bin/python -m pytest -q -m "slow or not slow" "$@"

# lint and format check
lint:
    .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

# format the code
fmt:
    .venv/bin/ruff format . && .venv/bin/ruff check --fix .

# cartoonize a real clip from ../shared with the Hayao style on this machine
demo:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/cartoonize video ../shared/media/sintel_5s.mp4 sintel_cartoon.mp4 --infer-side 256 --overwrite

# inference and end-to-end speed on this machine, printed (and written as JSON with --json PATH)
bench *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.benchmarks "$@"

# here, once: the data the GPU check carries (.gpu/: the Hayao checkpoint, 720p and 1080p clips)
gpu-prepare:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m tests.gpu_check --prepare .gpu

# the scaling row alone: a long generated clip in segments on 1 and 2 workers, local processes and local Ray
scaling *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.benchmarks --scaling-only "$@"

# bf16 on this CPU: PyTorch fp32 and bf16 and ONNX Runtime fp32 side by side, bf16's parity, and what --precision auto picks
bench-cpu-precision *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.cpu_precision "$@"

# light-paprika (../shared/models, imported) beside Hayao on this machine, in one run, with ratios
bench-imported *args:
    export CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) && .venv/bin/cartoonize models add ../shared/models/light_paprika.onnx --name light-paprika --force && .venv/bin/python -m cartoonize.measure.benchmarks --sizes 180x320,360x640 --styles hayao,light-paprika --engines onnxruntime "$@"

# on a GPU machine (≤ 8 min): AOTInductor matrix, pytest -m gpu, benches, video end to end, a table last (tests/gpu_check.py)
gpu-check:
    python3 -m tests.gpu_check --out gpu-check-out

# mutation testing of media/files.py, pipelines/video.py and export.py ([tool.mutmut] in pyproject.toml); then `.venv/bin/mutmut results`
mutate *args:
    .venv/bin/mutmut run "$@"

# what web-ready mp4 (faststart) costs: muxing with and without it, and a video job, on real clips
bench-faststart *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.faststart "$@"

# the GIL's switch interval in `cartoonize video`: 5 ms (CPython's) against the pipeline's 0.5 ms, around an engine that runs Python while its device works
bench-handoffs *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.handoffs "$@"

# guided upsampling from small inference against full-size inference and bicubic: PSNR, SSIM, speed, a contact sheet
bench-upsampling *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.upsampling --media ../shared/media "$@"

# the webcam here: fps shown, frames dropped and latency for several inference sizes against one paced source
bench-webcam *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.webcam "$@"

# exposure, flicker and closeness to today's output on every shared clip: --raw vs the default stages (Hayao, 320 px, 120 frames), a table and quality.json
quality *args:
    CARTOONIZE_WEIGHTS_URL=file://$(realpath ../shared/weights) .venv/bin/python -m cartoonize.measure.quality_clips ../shared/media --json quality.json "$@"
