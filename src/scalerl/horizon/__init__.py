"""The horizon testbed: tasks whose optimal values are known exactly, their datasets, and value-error diagnostics.

:mod:`scalerl.horizon.tasks` (mazes, point mass, combination locks; distances, V*, Q*), :mod:`scalerl.horizon.env`
(dynamics for numpy and JAX; the Gymnasium environment evaluation runs), :mod:`scalerl.horizon.datasets` (noisy-expert
and random-walk datasets as scalerl shards), :mod:`scalerl.horizon.diagnostics` (value error by true distance),
:mod:`scalerl.horizon.command` (``scalerl diagnose``), :mod:`scalerl.horizon.study` and :mod:`scalerl.horizon.report`
(``scalerl horizon-study``). See ``docs/horizon.md``.
"""
