"""Online off-policy RL (SAC with an optional BRO critic) with a controllable updates-to-data ratio."""
