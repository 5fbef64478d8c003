"""Engines: the store (`store`: names, manifests, the compatibility check) and the builders, each of
which makes one engine file from a checkpoint or an ONNX file and returns the build options it used
(`aoti`, `tensorrt`). Building and gating an engine with runners is `cartoonize.pipelines.build`."""
