"""Training CartoonGAN styles: unpaired photos and cartoons in, a cartoonize checkpoint out.

`python -m train --help` or `cartoonize train --help`; the library entry point is
`train.run.train(TrainConfig(...))`. This package imports the generator from `cartoonize`;
`cartoonize` never imports `train`. Importing `train` itself is light (no torch).
"""
