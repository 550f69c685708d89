"""Training and evaluation engine: the loops around the models, matcher and samplers.

`build_trainer(config, run_dir)` is the one factory of a training run (qaconv.engine.assemble): every part a
TrainConfig describes, handed to the `Trainer` (qaconv.engine.train).
"""

from qaconv.engine.assemble import FROM_CONFIG, build_trainer

__all__ = ["FROM_CONFIG", "build_trainer"]
