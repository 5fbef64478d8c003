"""Measurements that print numbers and JSON: `bench` (a runner's inference speed beside eager PyTorch,
`cartoonize bench`) and `benchmarks` (the README speed table, `python -m cartoonize.measure.benchmarks`)."""
