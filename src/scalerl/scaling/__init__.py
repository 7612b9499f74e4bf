"""Scaling laws for value-based RL: sweeps, results tables, fits, Pareto frontiers and reports.

Implements the method of ``docs/scaling.md`` (Rybkin et al. 2025, arXiv 2502.04327; Fu, Rybkin et al. 2025,
arXiv 2508.14881):

- :mod:`~scalerl.scaling.spec` and :mod:`~scalerl.scaling.sweep`: sweep files and running their trials locally or on
  Ray (``scalerl sweep``);
- :mod:`~scalerl.scaling.results`: run directories, qscaled zips and W&B CSV exports as one tidy table;
- :mod:`~scalerl.scaling.crossings`, :mod:`~scalerl.scaling.hyperparams`, :mod:`~scalerl.scaling.data_efficiency`,
  :mod:`~scalerl.scaling.model_size`, :mod:`~scalerl.scaling.offline`: pure numpy/scipy fitters on arrays;
- :mod:`~scalerl.scaling.analysis`: the pipeline from a table to every fitted number (``scalerl fit``);
- :mod:`~scalerl.scaling.plots` and :mod:`~scalerl.scaling.report`: PNGs and a markdown report from the fits
  (``scalerl report``).
"""
