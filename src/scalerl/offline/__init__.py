"""The offline wing: fused vmapped training loop, OGBench-protocol evaluation, OPEX, presets, `scalerl train`."""
