"""Loading OGBench-layout datasets (scalerl shards or official downloads) into a compact, device-ready pytree.

A dataset on disk is one or more ``.npz`` files with OGBench's keys::

    observations [R, obs_dim]   actions [R, action_dim]   terminals [R]   (qpos, qvel, button_states optional)

where every trajectory's last row has ``terminals == 1`` and no valid next state. In memory it becomes a
:class:`Dataset` in OGBench's *compact* form: the next observation of row ``i`` is row ``i + 1`` when
``valids[i] == 1``, and ``traj_ends[i]`` is the index of the last row of ``i``'s trajectory, so every kind of goal
and subgoal sampling is a gather (see :mod:`scalerl.sampling`). As in OGBench's compact datasets, a trajectory's final
row is only ever a next state: its last *valid* row (``traj_ends - 1``) is the last current state, and the last state a
goal or subgoal may be. Which files make up a dataset is :func:`scalerl.manifest.list_shards`'s business.

Validation happens on load; each problem is a one-line :class:`~scalerl.errors.ScalerlError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

from scalerl.envs import oracle_reps, parse_env_name
from scalerl.errors import ScalerlError
from scalerl.manifest import list_shards

REQUIRED_KEYS = ("observations", "actions", "terminals")
INFO_KEYS = ("qpos", "qvel", "button_states")
FLOAT_KEYS = ("observations", "actions", "qpos", "qvel")


class Dataset(struct.PyTreeNode):
    """A compact goal-conditioned dataset; every field is an array, so the whole thing is a jittable pytree.

    Attributes:
        observations: ``[N, obs_dim]`` float32.
        actions: ``[N, action_dim]`` float32 (the action of the last row of a trajectory is meaningless).
        traj_ends: ``[N]`` int32, index of the last row of the trajectory that contains row ``i`` (its final row, only
            ever a next state; goals end at :meth:`last_valid`).
        valid_idxs: ``[M]`` int32, the rows with ``valids == 1`` (the transitions that can be sampled, and the states
            random goals are drawn from).
        oracle_reps: ``[N, goal_dim]`` float32 oracle goal representations, or ``None``.
    """

    observations: jnp.ndarray
    actions: jnp.ndarray
    traj_ends: jnp.ndarray
    valid_idxs: jnp.ndarray
    oracle_reps: jnp.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of rows (states), including each trajectory's final state."""
        return int(self.observations.shape[0])

    @property
    def num_transitions(self) -> int:
        """Number of valid ``(s, a, s')`` transitions."""
        return int(self.valid_idxs.shape[0])

    @property
    def valids(self) -> jnp.ndarray:
        """``[N]`` float32, 1 where row ``i + 1`` is the next state of row ``i`` (computed; not kept on the device)."""
        return (self.traj_ends != jnp.arange(self.size)).astype(jnp.float32)

    def last_valid(self, idxs: jnp.ndarray) -> jnp.ndarray:
        """The last valid row of each row's trajectory (its last current state): ``traj_ends[idxs] - 1``.

        Goals and subgoals end here, as in OGBench's compact datasets (Park et al. 2024): the final row has no action
        and is never a current state, so a goal there could never be reached (``state == goal`` never fires).

        Args:
            idxs: ``[B]`` rows with a valid next state (for a one-row trajectory the result is meaningless).

        Returns:
            ``[B]`` int32.
        """
        return self.traj_ends[idxs] - 1


def read_shard(path: str, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Read and validate one ``.npz`` shard.

    Checks that the file opens, that the required keys exist, that all keys have the same number of rows, that
    float arrays are finite and that the last row is terminal (no truncated trajectory).

    Args:
        path: the ``.npz`` file.
        keys: keys to read besides the required ones (missing optional keys are skipped).

    Returns:
        ``{key: array}`` with observations/actions/terminals as float32.
    """
    wanted = list(REQUIRED_KEYS) + [k for k in (keys or INFO_KEYS) if k not in REQUIRED_KEYS]
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as file:
            present = set(file.files)
            for key in REQUIRED_KEYS:
                if key not in present:
                    raise ScalerlError(f"{path}: missing key '{key}' (found {sorted(present)})")
            for key in wanted:
                if key in present:
                    arrays[key] = file[key]
    except ScalerlError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ScalerlError(f"{path}: truncated or corrupt .npz file ({type(error).__name__}: {error})") from None
    rows = arrays["observations"].shape[0]
    for key, value in arrays.items():
        if value.shape[0] != rows:
            raise ScalerlError(f"{path}: '{key}' has {value.shape[0]} rows but 'observations' has {rows}")
    if rows == 0:
        raise ScalerlError(f"{path}: empty shard (0 rows)")
    if arrays["observations"].ndim != 2 or arrays["actions"].ndim != 2:
        raise ScalerlError(f"{path}: 'observations' and 'actions' must be 2-D [rows, dim]")
    for key in ("observations", "actions", "terminals"):
        arrays[key] = arrays[key].astype(np.float32, copy=False)
    for key in FLOAT_KEYS:
        if key in arrays and not np.isfinite(arrays[key]).all():
            bad = int(np.argmax(~np.isfinite(arrays[key]).reshape(rows, -1).all(axis=1)))
            raise ScalerlError(f"{path}: '{key}' contains NaN or inf (first at row {bad})")
    if arrays["terminals"][-1] != 1.0:
        raise ScalerlError(f"{path}: last row is not terminal (truncated trajectory); 'terminals' must end with 1")
    return arrays


def _expected_obs_dim(env_name: str) -> int:
    from scalerl.envs import make_env

    env, _ = make_env(parse_env_name(env_name).task.name)
    return int(env.observation_space.shape[0])


def load_arrays(path: str | os.PathLike, split: str = "train", env_name: str | None = None) -> dict[str, np.ndarray]:
    """Read and concatenate the shards of a dataset after validating each one.

    Args:
        path: dataset directory or ``.npz`` file (see :func:`scalerl.manifest.list_shards`).
        split: ``train`` or ``val``.
        env_name: when given, the observation dimension is checked against the environment.

    Returns:
        The concatenated arrays (OGBench's non-compact file layout).
    """
    files = list_shards(path, split)
    expected_dim = _expected_obs_dim(env_name) if env_name is not None else None
    parts: list[dict[str, np.ndarray]] = []
    reference: tuple[str, dict[str, tuple]] | None = None
    for file in files:
        arrays = read_shard(file)
        signature = {k: (v.shape[1:], v.dtype.str) for k, v in arrays.items()}
        if expected_dim is not None and arrays["observations"].shape[1] != expected_dim:
            raise ScalerlError(
                f"{file}: observations have dimension {arrays['observations'].shape[1]} "
                f"but {env_name} expects {expected_dim}"
            )
        if reference is None:
            reference = (file, signature)
        elif signature != reference[1]:
            key = next(k for k in set(signature) | set(reference[1]) if signature.get(k) != reference[1].get(k))
            raise ScalerlError(
                f"{file}: '{key}' is {signature.get(key)} (shape, dtype) but "
                f"{os.path.basename(reference[0])} has {reference[1].get(key)}; shards must agree"
            )
        parts.append(arrays)
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def compact(arrays: dict[str, np.ndarray], goal_reps: np.ndarray | None = None) -> Dataset:
    """Turn OGBench-layout arrays into a compact :class:`Dataset` (next observation = next row).

    Args:
        arrays: at least ``observations``, ``actions``, ``terminals`` (1 on each trajectory's last row).
        goal_reps: optional ``[N, goal_dim]`` oracle representations.
    """
    terminals = arrays["terminals"].astype(bool)
    rows = terminals.shape[0]
    ends = np.flatnonzero(terminals)
    if ends.size == 0 or ends[-1] != rows - 1:
        raise ScalerlError("terminals: the last row must be terminal")
    traj_ends = ends[np.searchsorted(ends, np.arange(rows))].astype(np.int32)
    valid_idxs = np.flatnonzero(~terminals).astype(np.int32)
    if valid_idxs.size == 0:
        raise ScalerlError("dataset has no valid transitions (every trajectory has a single state)")
    return Dataset(
        observations=jnp.asarray(arrays["observations"], dtype=jnp.float32),
        actions=jnp.asarray(arrays["actions"], dtype=jnp.float32),
        traj_ends=jnp.asarray(traj_ends),
        valid_idxs=jnp.asarray(valid_idxs),
        oracle_reps=None if goal_reps is None else jnp.asarray(goal_reps, dtype=jnp.float32),
    )


def load_dataset(
    path: str | os.PathLike,
    env_name: str | None = None,
    split: str = "train",
    check_obs_dim: bool = True,
) -> Dataset:
    """Load a dataset directory or file into a compact :class:`Dataset`.

    Args:
        path: scalerl shard directory, a directory of OGBench files, or one OGBench ``.npz`` file.
        env_name: e.g. ``puzzle-3x3-play-oraclerep``; with ``-oraclerep`` the oracle representations are added
            (maze: xy, cube: scaled cube positions, puzzle: button states, scene: OGBench's definition).
        split: ``train`` or ``val``.
        check_obs_dim: check the observation dimension against the environment (needs ``env_name``).
    """
    parsed = parse_env_name(env_name) if env_name is not None else None  # fail on a bad name before any I/O
    arrays = load_arrays(path, split, env_name if (env_name and check_obs_dim) else None)
    reps = None
    if parsed is not None and parsed.oraclerep:
        if "qpos" not in arrays:
            raise ScalerlError(f"{path}: '-oraclerep' needs 'qpos' in the dataset")
        reps = oracle_reps(env_name, arrays["qpos"], arrays.get("button_states"))
    return compact(arrays, reps)
