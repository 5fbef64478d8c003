"""Third-party ONNX cartoonizers brought into the toolkit's contract.

    models add PATH ──► detect.py (what the graph tells: rank, channel axis, dtype, dynamic
                        dimensions; the size multiple, probed) + the user's options for the rest
                    ──► wrap.py (pre/post graphs composed around the network in ONNX itself:
                        uint8 (N, H, W, 3) RGB in and out, like every exported style)
                    ──► add.py (the check on a real photo, against a numpy re-implementation)
                    ──► store.py (<cache>/models/<name>/<name>.onnx + manifest.json, atomically)

After that `--style NAME` finds the wrapped model (`cartoonize.choose`), and every runner that
takes an ONNX file (ONNX Runtime on CPU or CUDA, TensorRT through `build-engine`) runs it.
"""
