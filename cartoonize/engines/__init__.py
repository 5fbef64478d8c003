"""Engine builders: each makes one engine file from a checkpoint or an ONNX file and returns the
build options it used (recorded in the manifest). `cartoonize.build` drives them."""
