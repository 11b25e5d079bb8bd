"""Hyperparameter search over traced fields: the space and its samplers (`space`), random
or Sobol search with confirmation on fresh seeds (`run`), the `vecpg search` command."""
