"""The GPU check: one prepared run on a borrowed GPU machine (H100/H200), at most 8 minutes, that
runs the AOTInductor matrix, the `gpu` tests, the benchmarks and `cartoonize video` end to end,
writes everything under OUT and prints a table last.

    python -m tests.gpu_check --prepare .gpu          # here, beside ../shared (CPU; once)
    python -m tests.gpu_check --out "$OUT"            # there, with .gpu carried

`--prepare` writes what ../shared would give (a GPU machine has none): `hayao.pt` (the Hayao
checkpoint, stored in fp16 to travel light), and Big Buck Bunny's first 10 s re-encoded as H.264 +
AAC at 1280x720 (`bbb_720p.mp4`) and upscaled to 1920x1080 (`bbb_1080p.mp4`).

The steps, in the order the issue's targets need them (a step that would not fit in what is left of
`--budget` is skipped and reported, so the table always comes back; `--only` picks steps by name,
for a second call on a machine that is still warm):
1. `stages-gpu`: the frame stages on CUDA against the numpy ones (tests/stages/test_device.py),
   and the GPU frame path with them against the RGB path (tests/pipelines/test_yuv_frames.py);
2. `bench-1080x1920`: `cartoonize bench --engine eager,compile`, fp16 (the first compile at 1080p);
   `bench-1080x1920-heuristics`, the same with cuDNN's heuristics, not its timed algorithms;
3. `video-1080p*`: `cartoonize video --engine compile` end to end on the clip. One process runs
   five jobs with the engine it loaded once (a warm load is 10-12 s of a ~25 s job on the H200):
   the default stages (on the GPU), none (`-raw`), none through the GPU frame path (`-raw-yuv`:
   decoder planes to the GPU, converted there), the default stages through it (`-yuv`: the
   stages on the GPU give the encoder's planes), and none with the GIL switching every 5 ms as CPython does by default (`-raw-switch5ms`; the pipeline
   switches every 0.5 ms, pipelines.handoffs): is the engine thread held up by the others?
   `-raw-profile` and `-profile` trace frames 40-99 with torch.profiler (tests/gpu_profile.py;
   the traces go to OUT/profile-*), the second also counting synchronising CUDA calls;
   `-raw-graphs`, CUDA graphs (compile mode reduce-overhead); `handoffs-1080p-ceiling`: the
   pipeline around an engine that returns its frames at once (cartoonize.measure.handoffs), the
   host's own ceiling, at both switch intervals;
4. `video-720p*`: at 720p, in one process, the default stages, `-raw`, `-roundtrip` (the stages'
   frames sent to the host and back; the default keeps them on the GPU), `-raw-yuv` and `-yuv`; then
   `video-720p-profile`; `video-720p-raw-b4`, four frames an engine call; then
   `video-1080p-raw-cppwrap`, Inductor's C++ wrapper launching the kernels (no Python per kernel);
5. `aoti-matrix`: tests/aoti_matrix.py, which change lets the Hayao fp16 AOTInductor package load;
6. `bench-720x1280`;
7. `build-aoti-*` (720p and 1080p, with the first recipe the matrix saw working) beside
   `pytest-gpu` (`pytest -m gpu`), as one parallel group: the builds are CPU-bound compiles;
8. `bench-*-aoti`: eager, compile and the AOTInductor engines side by side;
9. `compile-modes`: tests/compile_modes.py, mode x layout of the compile runner (what is left).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.procs import wait_for

ROOT = Path(__file__).resolve().parents[1]
SOURCE_CLIP = "big_buck_bunny_0_30.webm"  # 1280×720, 24 fps, VP8 + Vorbis
CLIPS = {"bbb_720p.mp4": (1280, 720), "bbb_1080p.mp4": (1920, 1080)}
CLIP_SECONDS = 10


@dataclass
class Step:
    name: str
    argv: list[str]
    timeout: int  # seconds this step may take
    json_out: Path | None = None  # a JSON report the step writes
    group: str = ""  # steps of one group run at the same time
    env: dict[str, str] = field(default_factory=dict)  # added to the environment of this step
    also: dict[str, Path] = field(default_factory=dict)  # more results it writes: name -> JSON report
    result: dict[str, Any] = field(default_factory=dict)


def prepare(data: Path) -> None:
    """Here, beside ../shared: write the carried data folder."""

    from cartoonize.model import load_checkpoint
    from cartoonize.styles import style_checkpoint

    data.mkdir(parents=True, exist_ok=True)
    checkpoint = load_checkpoint(style_checkpoint("hayao"))
    checkpoint.state_dict = {
        k: v.half() if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()
    }
    checkpoint.extra["note"] = "weights stored in fp16 for transport; they load into fp32 modules"
    checkpoint.save(data / "hayao.pt")
    for name, size in CLIPS.items():
        reencode(ROOT.parent / "shared" / "media" / SOURCE_CLIP, data / name, size, CLIP_SECONDS)
    print(f"wrote {data}: {sorted(p.name for p in data.iterdir())}")


def reencode(source: Path, output: Path, size: tuple[int, int], seconds: float) -> None:
    """The first `seconds` of `source` scaled to `size` (bicubic), H.264 (CRF 23: the carried data must stay small, tagged BT.709)
    and its audio as AAC, into an mp4."""
    import av

    from cartoonize.media.files import BT709, LIMITED, Colour, source_colour, tag_encoder, to_rgb, to_yuv

    bt709 = Colour(BT709, LIMITED, 1, 1)
    with av.open(str(source)) as src, av.open(str(output), "w") as out:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        vout = out.add_stream("libx264", rate=vin.average_rate or Fraction(24))
        vout.width, vout.height, vout.pix_fmt = size[0], size[1], "yuv420p"
        vout.options = {"crf": "23", "preset": "fast"}
        tag_encoder(vout, bt709)
        rate = ain.codec_context.sample_rate
        aout = out.add_stream("aac", rate=rate)
        aout.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate, frame_size=1024)
        frames = 0
        for packet in src.demux(vin, ain):
            for frame in packet.decode():
                if frame.time is None or frame.time >= seconds:
                    continue
                if packet.stream is vin:
                    rgb = to_rgb(frame, source_colour(frame), size[0], size[1], "BICUBIC")
                    scaled = to_yuv(rgb, bt709)
                    scaled.pts = frames
                    frames += 1
                    out.mux(vout.encode(scaled))
                else:
                    frame.pts = None
                    for chunk in resampler.resample(frame):
                        out.mux(aout.encode(chunk))
        for chunk in resampler.resample(None):
            out.mux(aout.encode(chunk))
        out.mux(vout.encode(None))
        out.mux(aout.encode(None))


def run_steps(steps: list[Step], log, env: dict[str, str]) -> None:  # noqa: ANN001
    """Run steps at the same time (one alone runs alone); record exit, seconds, report, output tail."""
    procs = []
    for step in steps:
        log.write(f"\n===== {step.name}: {' '.join(step.argv)}\n")
        try:
            proc = subprocess.Popen(
                step.argv,
                cwd=ROOT,
                env={**env, **step.env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        except OSError as exc:  # the program is not installed there
            step.result.update(exit=f"cannot start: {exc.strerror}", seconds=0)
            continue
        procs.append((step, proc, time.monotonic()))
    for step, proc, start in procs:
        code, output = wait_for(proc, step.timeout - (time.monotonic() - start))
        lines = [line for line in output.splitlines() if line.strip()]
        step.result.update(exit=code, seconds=round(time.monotonic() - start, 1), tail=lines[-3:])
        if step.json_out and step.json_out.exists():
            step.result["report"] = json.loads(step.json_out.read_text())
        log.write(
            f"----- {step.name} output\n{output}\n===== {step.name}: exit {code} after {step.result['seconds']} s\n"
        )
        log.flush()
        print(
            f"[{time.strftime('%H:%M:%S')}] {step.name}: exit {code} ({step.result['seconds']} s)", flush=True
        )


def plan(data: Path, out: Path, work: Path) -> list[Step]:
    """Every step of the check, in order: DATA is the carried folder, OUT what comes back, WORK
    the machine's own folder (outputs, engines, caches)."""
    py = [sys.executable]
    cz = [*py, "-m", "cartoonize"]
    hayao = data / "hayao.pt"
    sizes = ("720x1280", "1080x1920")

    def build(shape: str) -> Step:
        argv = [*cz, "build-engine", "--style", "hayao", "--backend", "aoti", "--precision", "fp16",
                "--device", "cuda", "--shape", shape]  # fmt: skip
        return Step(f"build-aoti-{shape}", argv, 170, group="builds")

    def bench(
        shape: str, engines: str, timeout: int, tag: str = "", env: dict[str, str] | None = None
    ) -> Step:
        report = work / f"bench-{shape}{tag}.json"
        argv = [*cz, "bench", "--engine", engines, "--style", "hayao", "--device", "cuda",
                "--precision", "fp16", "--shape", shape, "--iters", "50", "--json", str(report)]  # fmt: skip
        return Step(f"bench-{shape}{tag}", argv, timeout, report, env=env or {})

    def video(clip: str, tag: str, yuv: bool = False, raw: bool = False, extra: tuple[str, ...] = (),
              suffix: str = "", timeout: int = 60, also: tuple[tuple[str, str], ...] = ()) -> Step:  # fmt: skip
        """A `tests.gpu_video` run; each of `also` (TAG, FLAGS) runs after it in the same process
        with the engine it loaded, as its own result `video-{tag}-TAG`."""
        tag += ("-raw" if raw else "") + ("-yuv" if yuv else "") + suffix
        report = work / f"video-{tag}.json"
        argv = [*py, "-m", "tests.gpu_video", str(data / clip), str(work / f"bunny_{tag}.mp4"), str(report),
                *(["--yuv-frames"] if yuv else []), *(["--raw"] if raw else []), *extra,
                *(f"--also={name}:{flags}" for name, flags in also)]  # fmt: skip
        reports = {f"video-{tag}-{name}": work / f"video-{tag}-{name}.json" for name, _ in also}
        return Step(f"video-{tag}", argv, timeout, report, also=reports)

    def handoffs(tag: str, host_ms: float, device_ms: float) -> Step:
        report = work / f"handoffs-{tag}.json"
        argv = [*py, "-m", "cartoonize.measure.handoffs", str(data / "bbb_1080p.mp4"), "--frames", "200",
                "--host-ms", str(host_ms), "--device-ms", str(device_ms), "--preset", "veryfast",
                "--json", str(report)]  # fmt: skip
        return Step(f"handoffs-{tag}", argv, 40, report)

    matrix, modes = work / "matrix", work / "modes"
    # fmt: off
    steps = [  # in the order of what the targets need most (a step that does not fit is skipped)
        Step("env", ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"], 20),
        Step("stages-gpu", [*py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                            "tests/stages/test_device.py", "tests/pipelines/test_yuv_frames.py"], 60),
        bench("1080x1920", "eager,compile", 150),  # the first compile at 1080p fills the Inductor cache
        # both with cuDNN's heuristics instead of its timed algorithms (runners.cudnn, on by default
        # since 2026-12-06 for jobs of one size): what the timing gives each
        bench("1080x1920", "eager,compile", 60, "-heuristics", {"CARTOONIZE_CUDNN_BENCHMARK": "0"}),
        # ... which these load warm. The default stages (on the GPU); then in the same process, with
        # the engine it loaded (a warm load is 10-12 s of a ~25 s step): no stages (decode, engine,
        # encode); no stages through the GPU frame path (planes in and out); and no stages with the
        # GIL switching every 5 ms, CPython's own, where the pipeline now switches every 0.5 ms
        # (pipelines.handoffs): is the engine thread held up by the others? (2026-12-04: 20 ms a
        # frame in engine calls for 11.4 ms of GPU work)
        # and the default stages through the GPU frame path (planes in, the stages' planes out)
        video("bbb_1080p.mp4", "1080p", timeout=150,
              also=(("raw", "--raw"), ("raw-yuv", "--raw --yuv-frames"), ("yuv", "--yuv-frames"),
                    ("raw-switch5ms", "--raw --switch-interval 0"))),
        # where the time goes (tests/gpu_profile.py): a torch.profiler trace of frames 40-99 (GPU
        # busy share and gaps, CUDA calls by thread, the engine calls' host time), and with the
        # stages on, each synchronising CUDA call counted by thread and place
        video("bbb_1080p.mp4", "1080p", raw=True, extra=("--profile", str(out / "profile-1080p-raw")),
              suffix="-profile"),
        video("bbb_1080p.mp4", "1080p", extra=("--profile", str(out / "profile-1080p"), "--sync-debug"),
              suffix="-profile"),
        # CUDA graphs: the whole network one launch a frame (compile mode reduce-overhead)
        video("bbb_1080p.mp4", "1080p", raw=True, extra=("--compile-mode", "reduce-overhead"), suffix="-graphs"),
        # the pipeline around an engine that returns its frames at once (cartoonize.measure.handoffs):
        # what decode, conversion and encode give on this machine, the host's own ceiling
        handoffs("1080p-ceiling", 0, 0),
        # 720p in one process: the default stages, none, the stages with the engine's frames sent to
        # the host and back (as before 2026-12-05; the default keeps them on the GPU for the stages,
        # runners.base.DeviceFrame): what that handoff saves; none and the default stages through
        # the GPU frame path
        video("bbb_720p.mp4", "720p", timeout=150,
              also=(("raw", "--raw"), ("roundtrip", "--round-trip"), ("raw-yuv", "--raw --yuv-frames"),
                    ("yuv", "--yuv-frames"))),
        # at 720p the stages cost most (62 fps raw, 38 with them, 2026-12-04): where, with the syncs
        video("bbb_720p.mp4", "720p", extra=("--profile", str(out / "profile-720p"), "--sync-debug"),
              suffix="-profile"),
        # four frames an engine call: a quarter of the launches and host calls a frame (one more
        # compile, at batch 4); if it is much faster end to end, `video` should batch on CUDA
        video("bbb_720p.mp4", "720p", raw=True, extra=("--batch", "4"), suffix="-b4", timeout=90),
        # the kernels launched by a C++ wrapper instead of Inductor's Python one (a longer first compile)
        video("bbb_1080p.mp4", "1080p", raw=True, extra=("--inductor", "cpp_wrapper=1"), suffix="-cppwrap",
              timeout=150),
        Step("aoti-matrix", [*py, "-m", "tests.aoti_matrix", "--checkpoint", str(hayao), "--out", str(matrix),
                             "--only", "default,fp32,width8,weights-beside", "--timeout", "200"], 210,
             matrix / "matrix.json"),
        bench("720x1280", "eager,compile", 120),
        *(build(shape) for shape in sizes),
        Step("pytest-gpu", [*py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                            "--junitxml", str(out / "pytest-gpu.xml")], 170, group="builds"),
        *(bench(shape, "eager,compile,aoti", 90, "-aoti") for shape in sizes),
        Step("compile-modes", [*py, "-m", "tests.compile_modes", "--checkpoint", str(hayao), "--out", str(modes),
                               "--budget", "150"], 170, modes / "modes.json"),
    ]
    # fmt: on
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-out")))
    parser.add_argument("--data", type=Path, default=ROOT / ".gpu")
    parser.add_argument(
        "--budget", type=float, default=440, help="seconds for all steps together (a device call: 8 min)"
    )
    parser.add_argument("--only", default="", help="comma-separated step names to run (default: all)")
    parser.add_argument("--prepare", type=Path, default=None, help="write the data folder and exit")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        return 0

    deadline = time.monotonic() + args.budget
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.gettempdir()) / "cartoonize-gpu-check"  # kept between calls on one machine
    cache = work / "cache"
    (cache / "styles").mkdir(parents=True, exist_ok=True)
    shutil.copy(args.data / "hayao.pt", cache / "styles" / "hayao.pt")
    env = {**os.environ, "CARTOONIZE_CACHE": str(cache), "CARTOONIZE_ENGINES": str(work / "engines"),
           "CARTOONIZE_TEST_HAYAO": str(args.data / "hayao.pt"), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))}  # fmt: skip
    steps = plan(args.data, out, work)
    wanted = set(filter(None, args.only.split(",")))
    chosen = [s for s in steps if not wanted or s.name in wanted]
    with (out / "gpu_check.log").open("w") as log:
        while chosen:
            batch = [s for s in chosen if s.group and s.group == chosen[0].group] or chosen[:1]
            chosen = [s for s in chosen if s not in batch]
            left = deadline - time.monotonic()
            if left < 20:
                for step in batch:
                    step.result = {"exit": "skipped: out of time"}
                    print(f"{step.name}: skipped, {left:.0f} s left", flush=True)
                continue
            for step in batch:
                step.timeout = int(min(step.timeout, left))
            run_steps(batch, log, env)
            hand_over_recipe(batch, chosen)
        for tag in ("720p", "1080p"):  # the outputs with the default stages (to look at)
            if (work / f"bunny_{tag}.mp4").exists():
                shutil.copy(work / f"bunny_{tag}.mp4", out / f"bunny_cartoon_{tag}.mp4")
        matrix = work / "matrix"
        if matrix.exists():  # each variant's build log: where a crash happened
            shutil.copytree(matrix, out / "aoti-matrix", ignore=shutil.ignore_patterns("*.pt", "*.pt2"))
    results: dict[str, Any] = {}
    for step in (s for s in steps if s.result):
        results[step.name] = step.result
        for name, path in step.also.items():  # the runs it made after its first, each its own result
            if path.exists():
                results[name] = {"exit": step.result.get("exit"), "seconds": f"in {step.name}",
                                 "report": json.loads(path.read_text())}  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return 0 if all(r.get("exit") == 0 for r in results.values()) else 1


def hand_over_recipe(done: list[Step], waiting: list[Step]) -> None:
    """After the matrix: the AOTInductor builds use the first recipe it saw working."""
    from tests.aoti_matrix import first_working_recipe

    for step in done:
        if step.name == "aoti-matrix" and "report" in step.result:
            variants = step.result["report"]["variants"]
            recipe = first_working_recipe({name: v["outcome"] for name, v in variants.items()})
            for build in (s for s in waiting if s.name.startswith("build-aoti") and recipe):
                build.env["CARTOONIZE_AOTI_RECIPES"] = str(recipe)


def print_table(results: dict[str, Any]) -> None:
    """The summary, last: one line per step, then the measured numbers against the issue's targets."""
    print("\n==== GPU check summary")
    compile_fps: dict[str, float] = {}
    for name, r in results.items():
        print(f"{name:<22} exit {r.get('exit')!s:<24} {r.get('seconds', '-')!s:>6} s")
        report = r.get("report") or {}
        if "runners" in report:
            for row in report["runners"]:
                if "error" in row:
                    print(f"    {row['runner']:<44} error: {row['error'][:100]}")
                    continue
                print(f"    {row['runner']:<44} {row['fps']:8.1f} fps  {row.get('speedup_vs_eager', float('nan')):5.2f}× eager  "
                      f"{100 * row.get('fraction_of_peak', 0):4.0f} % of peak, "
                      f"{row.get('host_path_fps', 0):.1f} fps from numpy frames")  # fmt: skip
                if row["runner"].startswith("compile"):
                    compile_fps[name.removeprefix("bench-")] = row["fps"]
            print(
                f"    {report['torch_eager']['runner']:<44} {report['torch_eager']['fps']:8.1f} fps  (baseline; {report.get('gpu')})"
            )
        elif "variants" in report:
            for variant, v in report["variants"].items():
                print(f"    {variant:<16} {v['outcome'][:70]:<70} {v['changes']}")
            print(f"    first working recipe: {report.get('first_working_recipe')}")
        elif "cells" in report:
            for c in report["cells"]:
                what = (
                    c.get("skipped")
                    or c.get("error")
                    or (
                        f"{c['fps']:.1f} fps, compile {c['compile_s']} s, {c['psnr_db']} dB, compiled {c['compiled']}"
                    )
                )
                layout = "channels_last" if c["channels_last"] else "NCHW"
                print(f"    {c['shape'][0]}x{c['shape'][1]} {c['mode']:<28} {layout:<13} {what}")
        elif "fps" in report and "frames" in report:
            print(f"    {report['frames']} frames {report['size']}: {report['fps']:.1f} fps end to end "
                  f"({report.get('fps_running', 0):.1f} once loaded; load {report.get('load_s', 0):.1f} s), engine "
                  f"{100 * report['engine_share']:.0f} % of the time, {report['engine']}, {report['codec']}, "
                  f"{report.get('frame_path', 'rgb')} frames, stages {report.get('stages')}, {report['colour']}")  # fmt: skip
            if report.get("not_planes"):
                print(f"      --yuv-frames not used: {report['not_planes']}")
            if report.get("waits_s"):  # the thread that hardly waits is the bottleneck
                print(
                    "      seconds blocked on a queue: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in report["waits_s"].items())
                )
            if report.get("profile"):
                from tests.gpu_profile import print_summary

                print_summary(report["profile"])
            for row in report.get("syncs") or ():
                print(f"      sync: {row['thread']:<10} {row['where']:<60} {row['per_frame']} a frame")
        elif report:
            print(f"    {json.dumps(report)[:300]}")
        elif r.get("tail") and name != "env":
            print(f"    {r['tail'][-1][:160]}")
    print("\n==== against the issue's targets")
    timed, heuristics = (compile_fps.get(k) for k in ("1080x1920", "1080x1920-heuristics"))
    eagers = [((results.get(f"bench-{k}") or {}).get("report") or {}).get("torch_eager", {}).get("fps")
              for k in ("1080x1920", "1080x1920-heuristics")]  # fmt: skip
    if timed and heuristics and all(eagers):
        print(f"cuDNN timed / heuristic algorithms at 1080p: compile {timed:.1f} / {heuristics:.1f} fps, "
              f"eager {eagers[0]:.1f} / {eagers[1]:.1f} fps")  # fmt: skip
    for tag in ("1080p-ceiling",):  # the pipeline around an emulated engine
        rows = (results.get(f"handoffs-{tag}") or {}).get("report") or []
        if isinstance(rows, list) and len(rows) >= 2:
            by = ", ".join(f"{r['switch_interval_ms']:g} ms {r['fps']:.1f} fps" for r in rows[:2])
            print(f"handoffs {tag} ({rows[0]['engine']}): {by} ({rows[1]['vs_baseline']:.2f}×)")
    for size, target in (("1080x1920", 80.0), ("720x1280", None)):
        bench = (results.get(f"bench-{size}") or {}).get("report") or {}
        eager = bench.get("torch_eager", {}).get("fps")
        fps = compile_fps.get(size)
        if fps and eager:
            goal = f" (target ≥ 3.5× and ≥ {target:.0f} fps)" if target else ""
            print(f"compile {size}: {fps:.1f} fps = {fps / eager:.2f}× eager fp16{goal}")
    for res in (
        "1080p",
        "720p",
    ):  # should --yuv-frames be the default on CUDA? (README, "The GPU frame path")
        pairs = []
        for planes, ffmpeg in (("-yuv", ""), ("-raw-yuv", "-raw")):
            a, b = (((results.get(f"video-{res}{k}") or {}).get("report") or {}) for k in (planes, ffmpeg))
            fa, fb = (r.get("fps_running", r.get("fps")) for r in (a, b))
            if fa and fb:
                pairs.append(
                    f"{'raw' if 'raw' in planes else 'stages'} {fa:.1f} / {fb:.1f} fps = {fa / fb:.2f}×"
                )
        if pairs:
            print(f"GPU frame path / FFmpeg's at {res}: " + ", ".join(pairs))
    for tag, size in (
        (f"{res}{kind}", "1080x1920" if res == "1080p" else "720x1280")
        for res in ("1080p", "720p")
        for kind in (
            "",
            "-raw",
            "-raw-yuv",
            "-yuv",
            "-roundtrip",
            "-raw-switch5ms",
            "-raw-graphs",
            "-raw-profile",
            "-profile",
            "-raw-cppwrap",
        )
    ):
        video = (results.get(f"video-{tag}") or {}).get("report") or {}
        if video.get("fps"):
            alone = compile_fps.get(size)
            running = video.get("fps_running", video["fps"])
            share = f" = {100 * running / alone:.0f} % of compile alone (target ≥ 80 %)" if alone else ""
            target = " (target ≥ 150 fps)" if tag.startswith("720p") else ""
            print(
                f"video {tag} (stages: {video.get('stages', '?')}) end to end: {video['fps']:.1f} fps with the load, "
                f"{running:.1f} fps once "
                f"loaded{share}{target}"
            )


if __name__ == "__main__":
    sys.exit(main())
