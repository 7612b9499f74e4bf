"""Running a sweep: every trial an ordinary run directory with an atomically written ``trial.json``.

Layout::

    SWEEP_DIR/sweep.json                 the parsed sweep file and its trial names
    SWEEP_DIR/<trial_name>/trial.json    params, status (pending | running | done | failed), attempts, error, timings
    SWEEP_DIR/<trial_name>/attempt-N.log stdout and stderr of attempt N
    SWEEP_DIR/<trial_name>/...           whatever the command writes there ({trial_dir}), e.g. a scalerl run

Running the sweep again skips trials that are ``done``, and gives every other trial up to ``1 + max_retries``
attempts. A trial fails on a non-zero exit, a signal (a killed worker), a timeout, an exception of the Ray task, or
a NaN / inf value in one of its metric files (divergence); the failure is recorded in its ``trial.json`` and the other
trials go on. A trial found ``running`` (the sweep itself was killed) counts as an interrupted attempt.

Trials run as subprocesses, ``workers`` at a time on this machine, or as Ray tasks (``ray_address``) that run the
same subprocess on a cluster node; the trial directories must then be on a file system every node sees.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime
import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time

from scalerl.atomic import atomic_write_json
from scalerl.errors import ScalerlError
from scalerl.runs import iter_jsonl
from scalerl.scaling.spec import SweepSpec, Trial

TRIAL_FILE = "trial.json"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_trial(trial_dir: str) -> dict | None:
    """A trial's ``trial.json`` (None if it has none or it is unreadable)."""
    try:
        with open(os.path.join(trial_dir, TRIAL_FILE)) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def find_nan(trial_dir: str, files: tuple[str, ...]) -> str | None:
    """The first NaN / inf number in the trial's JSON-lines files, described in a few words (None if there is none)."""
    for name in files:
        # A trial's command may write anything: lines that are not JSON objects are skipped, not fatal.
        for number, _, row in iter_jsonl(os.path.join(trial_dir, name), skip_corrupt=True):
            for key, value in row.items():
                if isinstance(value, float) and not math.isfinite(value):
                    step = f", step {row['step']}" if "step" in row else ""
                    return f"{name} line {number}: {key} = {value}{step}"
    return None


def _last_line(log_path: str, start: int = 0, limit: int = 200) -> str:
    """The last non-empty line the command wrote to its log (after byte ``start``), cut to ``limit`` characters."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(start, os.path.getsize(log_path) - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def run_attempt(
    command: str,
    shell: bool,
    cwd: str | None,
    env: dict[str, str],
    trial_dir: str,
    log_path: str,
    timeout: float,
    nan_files: tuple[str, ...],
    register=None,
) -> dict:
    """Run one attempt of a trial to completion (here or inside a Ray task) and judge it.

    Args:
        command: the rendered command.
        shell: run it with ``/bin/sh -c``; otherwise it is split into words.
        cwd: working directory.
        env: extra environment variables.
        trial_dir: the trial's directory (scanned for NaN afterwards).
        log_path: file receiving stdout and stderr.
        timeout: seconds before the process group is killed (0: no limit).
        nan_files: trial files scanned for NaN / inf.
        register: called with the ``Popen`` object once started (lets the driver kill it on Ctrl-C).

    Returns:
        ``{"status": "done" | "failed", "error", "returncode", "started", "finished", "duration_s", "host"}``.
    """
    started, clock = _now(), time.monotonic()
    result = {"started": started, "host": socket.gethostname(), "returncode": None, "error": None}
    os.makedirs(trial_dir, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"# {started} on {result['host']}: {command}\n".encode())
        log.flush()
        output_start = log.tell()
        argv = ["/bin/sh", "-c", command] if shell else shlex.split(command)
        try:
            process = subprocess.Popen(
                argv, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as error:
            process = None
            result["error"] = f"could not start {argv[0]!r}: {error.strerror or error}"
        if process is not None:
            if register is not None:
                register(process)
            try:
                result["returncode"] = process.wait(timeout=timeout or None)
            except subprocess.TimeoutExpired:
                kill_process_group(process)
                result["returncode"] = process.wait()
                result["error"] = f"timed out after {timeout:g} s"
    returncode = result["returncode"]
    if result["error"] is None and returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        result["error"] = f"killed by {name}"
    elif result["error"] is None and returncode:
        last = _last_line(log_path, output_start)
        result["error"] = f"exit code {returncode}" + (f": {last}" if last else "")
    if result["error"] is None:
        nan = find_nan(trial_dir, nan_files)
        if nan:
            result["error"] = f"NaN divergence in {nan}"
    result["status"] = "done" if result["error"] is None else "failed"
    result["finished"] = _now()
    result["duration_s"] = round(time.monotonic() - clock, 3)
    return result


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL a trial's whole process group (it was started in its own session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclasses.dataclass
class SweepSummary:
    """What a sweep invocation did.

    Attributes:
        sweep_dir: the sweep directory.
        total: trials in the sweep.
        skipped: trials already done before this invocation.
        done: trials done now (including skipped ones).
        failed: names of trials that are failed after this invocation.
        attempts: attempts made by this invocation.
    """

    sweep_dir: str
    total: int
    skipped: int
    done: int
    failed: list[str]
    attempts: int


class _Lock:
    """``SWEEP_DIR/.sweep.lock``: one ``scalerl sweep`` per directory at a time (a stale lock is taken over)."""

    def __init__(self, sweep_dir: str):
        self.path = os.path.join(sweep_dir, ".sweep.lock")

    def __enter__(self):
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    with open(self.path) as f:
                        host, pid = f.read().split()
                    alive = host == socket.gethostname() and _pid_alive(int(pid))
                except (OSError, ValueError):
                    alive = False
                if alive:
                    raise ScalerlError(
                        f"{os.path.dirname(self.path)}: another `scalerl sweep` (pid {pid}) is running this sweep"
                    ) from None
                os.remove(self.path)
                continue
            with os.fdopen(handle, "w") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
            return self
        raise ScalerlError(f"{self.path}: could not take the sweep lock")

    def __exit__(self, *exc):
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_for_retry(trial_dir: str) -> None:
    """Remove a failed attempt's outputs, keeping ``trial.json`` and the attempt logs."""
    for entry in os.listdir(trial_dir):
        if entry == TRIAL_FILE or (entry.startswith("attempt-") and entry.endswith(".log")):
            continue
        path = os.path.join(trial_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


class _LocalBackend:
    """Trials as subprocesses, ``workers`` at a time, each waited on by a thread."""

    def __init__(self, workers: int):
        self.capacity = workers
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trial")
        self.processes: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def submit(self, key, kwargs):
        def register(process):
            with self.lock:
                self.processes[key] = process

        return self.executor.submit(run_attempt, **kwargs, register=register)

    def wait(self, futures, timeout: float):
        done, _ = concurrent.futures.wait(futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return list(done)

    @staticmethod
    def result(future) -> dict:
        return future.result()

    def cancel(self):
        with self.lock:
            for process in self.processes.values():
                if process.poll() is None:
                    kill_process_group(process)
        self.executor.shutdown(wait=True, cancel_futures=True)

    def close(self):
        self.executor.shutdown(wait=True)


def connect_ray(address: str):
    """Connect to a Ray cluster (``local``: start one here; ``auto``: the running one; else its address) unless this
    process is already connected; shared by sweeps and ``scalerl generate --ray``.

    Returns:
        ``(ray, owns_connection)``: the ``ray`` module, and whether this call connected (so the caller shuts it down).

    Raises:
        ScalerlError: one line naming ``--ray`` if Ray is not installed or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError:
        raise ScalerlError("--ray: Ray is not installed; pip install 'scalerl[sweep]' (ray[default])") from None
    if ray.is_initialized():
        return ray, False
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        message = " ".join(str(error).split())[:200]
        raise ScalerlError(f"--ray {address}: cannot connect to a Ray cluster ({message})") from None
    return ray, True


class _RayBackend:
    """Trials as Ray tasks running :func:`run_attempt` on cluster nodes."""

    def __init__(self, address: str, spec: SweepSpec, workers: int | None):
        self.ray, self.owns_connection = connect_ray(address)
        ray = self.ray
        options = {"num_cpus": spec.cpus_per_trial, "max_retries": 0, "retry_exceptions": False}
        if spec.gpus_per_trial:
            options["num_gpus"] = spec.gpus_per_trial
        self.task = ray.remote(**options)(run_attempt)
        cluster_cpus = ray.cluster_resources().get("CPU", 1.0)
        self.capacity = workers or max(1, int(cluster_cpus // max(spec.cpus_per_trial, 1e-9)))

    def submit(self, key, kwargs):
        return self.task.remote(**kwargs)

    def wait(self, futures, timeout: float):
        ready, _ = self.ray.wait(list(futures), num_returns=1, timeout=timeout)
        return ready

    def result(self, future) -> dict:
        try:
            return self.ray.get(future)
        except self.ray.exceptions.RayError as error:  # a dead worker, a lost node or an exception in the task
            message = " ".join(str(error).split())[:300]
            return {
                "status": "failed",
                "error": f"Ray task failed ({type(error).__name__}): {message}",
                "returncode": None,
                "started": None,
                "finished": _now(),
                "duration_s": None,
                "host": None,
            }

    def cancel(self):
        self.close()

    def close(self):
        if self.owns_connection:
            self.ray.shutdown()


def run_sweep(
    spec: SweepSpec,
    sweep_dir: str | None = None,
    workers: int | None = None,
    max_retries: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
) -> SweepSummary:
    """Run every unfinished trial of a sweep.

    Args:
        spec: the sweep.
        sweep_dir: the sweep directory (default: the file's ``out``, else ``sweeps/<name>``).
        workers: trials at a time (default: the file's ``workers``, else the CPU count; on Ray the cluster's CPUs
            divided by ``cpus_per_trial``).
        max_retries: extra attempts per trial in this invocation (default: the file's ``max_retries``).
        ray_address: None to run locally; ``auto`` (the running cluster), ``local`` (start one here) or an address.
        progress: show a progress bar (done / running / failed, ETA).

    Returns:
        A :class:`SweepSummary`.
    """
    sweep_dir = os.path.abspath(sweep_dir or spec.out or os.path.join("sweeps", spec.name))
    os.makedirs(sweep_dir, exist_ok=True)
    max_retries = spec.max_retries if max_retries is None else max_retries
    trials = spec.trials()
    with _Lock(sweep_dir):
        atomic_write_json(
            os.path.join(sweep_dir, "sweep.json"),
            {
                "name": spec.name,
                "spec": os.path.abspath(spec.path),
                "command": spec.command,
                "grid": spec.grid,
                "params": spec.params,
                "seeds": list(spec.seeds),
                "trials": [trial.name for trial in trials],
                "updated": _now(),
            },
        )
        states, todo = {}, []
        for trial in trials:
            state = _prepare_trial(spec, trial, os.path.join(sweep_dir, trial.name))
            states[trial.name] = state
            if state["status"] != "done":
                todo.append(trial)
        skipped = len(trials) - len(todo)
        if ray_address:
            backend = _RayBackend(ray_address, spec, workers)
        else:
            backend = _LocalBackend(workers or spec.workers or os.cpu_count() or 1)
        attempts = _schedule(spec, sweep_dir, todo, states, backend, max_retries, progress, skipped, len(trials))
    failed = [name for name, state in states.items() if state["status"] == "failed"]
    done = sum(state["status"] == "done" for state in states.values())
    return SweepSummary(sweep_dir, len(trials), skipped, done, failed, attempts)


def _prepare_trial(spec: SweepSpec, trial: Trial, trial_dir: str) -> dict:
    """Read (or create) a trial's state; a trial left ``running`` by a killed sweep becomes an interrupted failure."""
    os.makedirs(trial_dir, exist_ok=True)
    state = read_trial(trial_dir)
    if state is None:
        state = {
            "name": trial.name,
            "params": trial.params,
            "command": None,
            "status": "pending",
            "attempts": 0,
            "error": None,
            "created": _now(),
            "started": None,
            "finished": None,
            "duration_s": None,
            "history": [],
        }
    elif state.get("status") == "running":
        state["status"] = "failed"
        state["error"] = "interrupted: the sweep stopped while this attempt ran"
        if state.get("history"):
            state["history"][-1].update(status="failed", error=state["error"])
    state["params"] = trial.params
    atomic_write_json(os.path.join(trial_dir, TRIAL_FILE), state)
    return state


def _schedule(spec, sweep_dir, todo, states, backend, max_retries, progress, skipped, total) -> int:
    from scalerl.progress import progress_bar

    queue = collections.deque((trial, 0) for trial in todo)
    running: dict = {}  # future -> (trial, attempts in this invocation)
    attempts = 0
    bar = progress_bar(total, initial=skipped, desc=spec.name, unit="trial", enabled=progress, dynamic_ncols=True)
    failed_final = 0

    def show():
        done = sum(state["status"] == "done" for state in states.values())
        bar.set_postfix_str(f"done={done} running={len(running)} failed={failed_final}", refresh=True)

    try:
        show()
        while queue or running:
            while queue and len(running) < backend.capacity:
                trial, count = queue.popleft()
                future = backend.submit(trial.name, _start_attempt(spec, sweep_dir, trial, states[trial.name]))
                running[future] = (trial, count + 1)
                attempts += 1
                show()
            for future in backend.wait(list(running), timeout=0.5):
                trial, count = running.pop(future)
                result = backend.result(future)
                state = states[trial.name]
                _finish_attempt(sweep_dir, trial, state, result)
                if result["status"] == "failed" and count <= max_retries:
                    queue.append((trial, count))
                else:
                    failed_final += result["status"] == "failed"
                    bar.update(1)
                show()
    except KeyboardInterrupt:
        backend.cancel()
        for trial, _ in running.values():
            state = states[trial.name]
            interrupted = {"status": "failed", "error": "interrupted (Ctrl-C)", "finished": _now()}
            _finish_attempt(sweep_dir, trial, state, {**interrupted, "returncode": None, "duration_s": None})
        raise
    finally:
        bar.close()
    backend.close()
    return attempts


def _start_attempt(spec: SweepSpec, sweep_dir: str, trial: Trial, state: dict) -> dict:
    """Mark a trial running (cleaning a failed attempt's outputs first) and build its :func:`run_attempt` kwargs."""
    trial_dir = os.path.join(sweep_dir, trial.name)
    if state["attempts"] > 0 and spec.on_retry == "clean":
        _clean_for_retry(trial_dir)
    state["attempts"] += 1
    attempt = state["attempts"]
    command = spec.render(trial, trial_dir, sweep_dir, attempt)
    state.update(status="running", command=command, error=None, started=_now(), finished=None, duration_s=None)
    state["history"].append({"attempt": attempt, "status": "running", "started": state["started"]})
    atomic_write_json(os.path.join(trial_dir, TRIAL_FILE), state)
    env = {**spec.env, "SCALERL_TRIAL_DIR": trial_dir, "SCALERL_TRIAL_NAME": trial.name}
    return {
        "command": command,
        "shell": spec.shell,
        "cwd": spec.cwd,
        "env": env,
        "trial_dir": trial_dir,
        "log_path": os.path.join(trial_dir, f"attempt-{attempt}.log"),
        "timeout": spec.timeout,
        "nan_files": spec.nan_check,
    }


def _finish_attempt(sweep_dir: str, trial: Trial, state: dict, result: dict) -> None:
    state.update(
        status=result["status"], error=result["error"], finished=result["finished"], duration_s=result["duration_s"]
    )
    if result.get("started"):
        state["started"] = result["started"]
    entry = {key: result.get(key) for key in ("status", "error", "returncode", "finished", "duration_s", "host")}
    if result.get("started"):
        entry["started"] = result["started"]
    state["history"][-1].update(entry)
    atomic_write_json(os.path.join(sweep_dir, trial.name, TRIAL_FILE), state)


def sweep_status(sweep_dir: str) -> dict[str, list[str]]:
    """Trial names by status (``pending``, ``running``, ``done``, ``failed``) from the trials' ``trial.json``."""
    by_status: dict[str, list[str]] = collections.defaultdict(list)
    for entry in sorted(os.listdir(sweep_dir)):
        state = read_trial(os.path.join(sweep_dir, entry))
        if state is not None:
            by_status[state.get("status", "pending")].append(entry)
    return dict(by_status)
