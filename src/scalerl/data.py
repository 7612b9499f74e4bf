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
A packed store (:mod:`scalerl.store`, ``scalerl pack``) was validated when it was packed: loading one reads its
blocks straight into the arrays (no decompression, no concatenation copy) and takes its precomputed oracle
representations. Row indices are computed in int64 on the host; the whole-dataset path keeps them as int32 on the
device and refuses a dataset of 2^31 rows or more (train on such a store through a window,
:mod:`scalerl.offline.window`).
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
from scalerl.store import Store, is_store

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


def expected_obs_dim(env_name: str) -> int:
    """The observation dimension of an environment (builds it once)."""
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
    expected_dim = expected_obs_dim(env_name) if env_name is not None else None
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
    traj_ends = ends[np.searchsorted(ends, np.arange(rows, dtype=np.int64))]
    return device_dataset(arrays["observations"], arrays["actions"], traj_ends, goal_reps)


MAX_ROWS = 2**31 - 1
"""Rows a device :class:`Dataset` may hold: its trajectory indices are int32 (JAX's default integer)."""


def device_dataset(
    observations: np.ndarray, actions: np.ndarray, traj_ends: np.ndarray, goal_reps: np.ndarray | None = None
) -> Dataset:
    """A compact :class:`Dataset` on the device from host arrays and each row's trajectory end (any integer dtype).

    Raises:
        ScalerlError: the dataset has 2^31 rows or more (int32 indices would wrap), or no valid transition.
    """
    rows = traj_ends.shape[0]
    if rows > MAX_ROWS:
        raise ScalerlError(
            f"dataset has {rows} rows; the whole-dataset path indexes rows with int32 (at most {MAX_ROWS}): "
            "pack it (scalerl pack) and train with --window"
        )
    valid_idxs = np.flatnonzero(traj_ends != np.arange(rows, dtype=traj_ends.dtype)).astype(np.int32)
    if valid_idxs.size == 0:
        raise ScalerlError("dataset has no valid transitions (every trajectory has a single state)")
    return Dataset(
        observations=jnp.asarray(observations, dtype=jnp.float32),
        actions=jnp.asarray(actions, dtype=jnp.float32),
        traj_ends=jnp.asarray(traj_ends.astype(np.int32)),
        valid_idxs=jnp.asarray(valid_idxs),
        oracle_reps=None if goal_reps is None else jnp.asarray(goal_reps, dtype=jnp.float32),
    )


def load_dataset(
    path: str | os.PathLike,
    env_name: str | None = None,
    split: str = "train",
    check_obs_dim: bool = True,
    max_transitions: int | None = None,
) -> Dataset:
    """Load a dataset directory or file into a compact :class:`Dataset`.

    Args:
        path: scalerl shard directory, a directory of OGBench files, or one OGBench ``.npz`` file.
        env_name: e.g. ``puzzle-3x3-play-oraclerep``; with ``-oraclerep`` the oracle representations are added
            (maze: xy, cube: scaled cube positions, puzzle: button states, scene: OGBench's definition).
        split: ``train`` or ``val``.
        check_obs_dim: check the observation dimension against the environment (needs ``env_name``).
        max_transitions: a packed store only: load at most this many transitions, a fixed subset of whole blocks
            (:func:`block_subset`); all of them by default.
    """
    parsed = parse_env_name(env_name) if env_name is not None else None  # fail on a bad name before any I/O
    if is_store(path):
        store = Store(path)
        check_store(store, env_name, check_obs_dim)
        blocks = block_subset(store.blocks[split], max_transitions)
        if not blocks:
            raise ScalerlError(f"{path}: the store has no {split} blocks")
        fields = ["observations", "actions", "traj_ends"] + (["oracle_reps"] if parsed and parsed.oraclerep else [])
        arrays = store.load(split, fields, blocks)
        return device_dataset(arrays["observations"], arrays["actions"], arrays["traj_ends"], arrays.get("oracle_reps"))
    arrays = load_arrays(path, split, env_name if (env_name and check_obs_dim) else None)
    reps = None
    if parsed is not None and parsed.oraclerep:
        if "qpos" not in arrays:
            raise ScalerlError(f"{path}: '-oraclerep' needs 'qpos' in the dataset")
        reps = oracle_reps(env_name, arrays["qpos"], arrays.get("button_states"))
    return compact(arrays, reps)


def check_store(store, env_name: str | None, check_obs_dim: bool = True) -> None:
    """Refuse, in one line, a packed store that does not fit ``env_name``: its observation dimension (from
    ``store.json``; no data read), and for ``-oraclerep`` names its oracle representations (present, and computed for
    the same task).

    Args:
        store: an open :class:`scalerl.store.Store`.
        env_name: the environment / dataset name trained on (None: nothing to check).
        check_obs_dim: check the observation dimension against the environment.
    """
    if env_name is None:
        return
    parsed = parse_env_name(env_name)
    if check_obs_dim:
        found = store.fields["observations"].shape[0]
        expected = expected_obs_dim(env_name)
        if found != expected:
            raise ScalerlError(f"{store.path}: observations have dimension {found} but {env_name} expects {expected}")
    if parsed.oraclerep:
        if "oracle_reps" not in store.fields:
            raise ScalerlError(
                f"{store.path}: '-oraclerep' needs oracle representations; pack the source again with --env"
            )
        if store.task != parsed.task.name:
            raise ScalerlError(f"{store.path}: its oracle representations are {store.task}'s, not {parsed.task.name}'s")


def block_subset(blocks: Sequence, max_transitions: int | None) -> list:
    """A fixed subset of whole blocks holding at most ``max_transitions`` transitions (at least one block), spread
    evenly over the store (every ``len(blocks) / count``-th block), in store order; all blocks when they fit.

    The validation loss uses it (issue 12, item 5): the same blocks at every log step and in every resumed session.

    Args:
        blocks: the blocks (:class:`scalerl.store.Block`), in store order.
        max_transitions: the budget; None for all.
    """
    blocks = list(blocks)
    if max_transitions is None or sum(block.transitions for block in blocks) <= max_transitions:
        return blocks
    for count in range(len(blocks), 0, -1):
        chosen = [blocks[(j * len(blocks)) // count] for j in range(count)]
        if count == 1 or sum(block.transitions for block in chosen) <= max_transitions:
            return chosen
    return blocks[:1]
