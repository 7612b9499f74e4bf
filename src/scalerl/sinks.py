"""Optional metric sinks beside the run directory's JSONL files: TensorBoard and Weights & Biases.

Both are off by default and never required; asking for one whose package is missing is a one-line error.
"""

from __future__ import annotations

import os

from scalerl.errors import ScalerlError


def check_sinks(tensorboard: bool, wandb_project: str | None) -> None:
    """Fail early (before a run directory is written) if a requested sink's package is missing."""
    import importlib.util

    if tensorboard and importlib.util.find_spec("tensorboardX") is None:
        raise ScalerlError("--tensorboard: needs the tensorboardX package (pip install tensorboardX)")
    if wandb_project and importlib.util.find_spec("wandb") is None:
        raise ScalerlError("--wandb-project: needs the wandb package (pip install wandb)")


class MetricSinks:
    """Fan rows of ``{"step", "seed", key: value}`` out to the enabled sinks (tag ``seedN/key``)."""

    def __init__(self, run_dir: str, tensorboard: bool = False, wandb_project: str | None = None, config=None):
        self._writers = []
        if tensorboard:
            check_sinks(tensorboard, None)
            from tensorboardX import SummaryWriter

            self._writers.append(("tensorboard", SummaryWriter(os.path.join(run_dir, "tensorboard"))))
        if wandb_project:
            check_sinks(False, wandb_project)
            import wandb

            run = wandb.init(project=wandb_project, dir=run_dir, config=config, name=os.path.basename(run_dir))
            self._writers.append(("wandb", run))

    def write(self, rows: list[dict]) -> None:
        """Log every numeric value of every row at its step."""
        for kind, writer in self._writers:
            for row in rows:
                values = {
                    f"seed{row['seed']}/{k}": v
                    for k, v in row.items()
                    if k not in ("step", "seed") and isinstance(v, (int, float))
                }
                if kind == "tensorboard":
                    for tag, value in values.items():
                        writer.add_scalar(tag, value, row["step"])
                else:
                    writer.log(values, step=row["step"])

    def close(self) -> None:
        """Flush and close the sinks."""
        for kind, writer in self._writers:
            writer.close() if kind == "tensorboard" else writer.finish()
