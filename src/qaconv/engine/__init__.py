"""Training and evaluation engine: the loops around the models, matcher and samplers."""
