"""Local generation of OGBench datasets: oracles (episodes), shards (parallel, resumable files) and the command."""

from scalerl.generate.shards import DatasetPlan, generate_dataset, parse_size, plan_dataset

__all__ = ["DatasetPlan", "generate_dataset", "parse_size", "plan_dataset"]
