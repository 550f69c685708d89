"""Training and evaluation engine: the loops around the models, matcher and samplers.

`qaconv.engine.assemble.build_trainer(config, run_dir)` is the one factory of a training run: every part a
TrainConfig describes, handed to the `Trainer` (qaconv.engine.train). Nothing is imported here, so that
importing one part of the engine (the demo's sizes, the command line) does not import torch.
"""
