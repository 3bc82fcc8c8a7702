"""Provides executors that obtain an ensemble's members: one after another here, or as parallel Ray tasks.

Both reuse finished members the same way (``ensemble_recipes.find_reusable``) and train the
rest with the same trainer Options, so members land in the same run layout either way.

Ray (an optional extra: ``pip install 'mmzoo[ray]'``) runs each member that needs training
as one task asking for ``cpus``/``gpus``. Without an address a local Ray instance is started
for the command and shut down after it; with one, mmzoo joins that cluster, whose nodes must
have mmzoo installed and see the runs folder at the same absolute path (a shared filesystem).
Tasks receive and return JSON text. Each task runs torch with ``int(cpus)`` threads (at
least 1): the thread count changes floating-point reduction order, so a member trained on
Ray matches one trained here bit for bit when this process also runs with that many
threads (e.g. ``OMP_NUM_THREADS=1`` against ``--cpus-per-member 1``) on the same device.
A task that fails is reported by member name with its error once every task has ended;
the members that finished stay on disk and are reused when the command is run again, so a
rerun trains only the failed ones. Ray does not retry failed tasks itself (``max_retries=0``).
Boosting cannot use Ray: each round's sample weights come from the previous round's errors.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmzoo.ensemble.members import Obtained, find_reusable, member_options, obtain
from mmzoo.errors import TrainingError
from mmzoo.runs.folders import DEFAULT_ROOT, Run

INSTALL_HINT = "install it with `pip install 'mmzoo[ray]'` (or `pip install 'ray>=2.52'`)"
# Forwarded to Ray workers, which on a cluster do not inherit this shell's environment.
FORWARDED_ENV_PREFIXES = ("MMZOO_", "HF_", "TRANSFORMERS_")
# ...except secrets (HF_TOKEN and the like), which go only when named in MMZOO_RAY_FORWARD_SECRETS=NAME,NAME.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL", "AUTH")
LOCAL_HOST = "127.0.0.1"  # a local Ray instance listens here only, never on every interface


def forwarded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables Ray tasks receive: mmzoo's and the hubs' settings, without secrets unless asked for."""
    environ = dict(os.environ if environ is None else environ)
    asked = {n.strip() for n in environ.get("MMZOO_RAY_FORWARD_SECRETS", "").split(",") if n.strip()}
    return {k: v for k, v in environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)
            and (k in asked or not any(word in k.upper() for word in SECRET_WORDS))}


class LocalExecutor:
    """Members one after another in this process: the default."""

    def check_recipe(self, ensemble: dict) -> None:
        pass

    def obtain_all(self, members: list, datasets, *, out, device: str, control):
        from dataclasses import replace


        result = Obtained([], [], [])
        for k, member in enumerate(members, 1):
            prefix = f"[{k}/{len(members)}] "
            numbered = replace(control, say=lambda msg, p=prefix: control.say(p + msg))
            run, reused = obtain(member, datasets, out=out, device=device, control=numbered)
            result.runs.append(run)
            result.reused.append(reused)
            result.notes.append(member.note)
        return result


@dataclass
class Resources:
    """What one member's Ray task asks for."""

    cpus: float = 1.0
    gpus: float = 0.0

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))


class RayExecutor:
    """Members that need training run as Ray tasks, in parallel as far as the resources allow."""

    def __init__(self, resources: Resources, address: str | None = None) -> None:
        self.resources = resources
        self.address = address
        self.ray = import_ray()

    def check_recipe(self, ensemble: dict) -> None:
        if "boosting" in ensemble["recipe"]:
            raise TrainingError(f"ensemble {ensemble['name']!r} is a boosting recipe, whose members train in "
                                "sequence (each round's sample weights come from the previous round's errors), "
                                "so Ray cannot train them in parallel",
                                hint="run it without --executor ray")

    def obtain_all(self, members: list, datasets, *, out, device: str, control):

        say = control.say
        root = Path(out or DEFAULT_ROOT).resolve()  # workers may start elsewhere; give them an absolute path
        runs: list[Run | None] = [find_reusable(m, datasets.get(m.spec).fingerprint, root) for m in members]
        for member, run in zip(members, runs, strict=True):
            if run is not None:
                say(f"{member.folder}: reusing finished run {run.name}")
        todo = [k for k, run in enumerate(runs) if run is None]
        failures: list[str] = []
        if todo:
            task_device = self._task_device(device)
            with self._connected():
                failures = self._run_tasks(members, todo, runs, root, task_device, member_options, say)
        if failures:
            kept = sum(run is not None for run in runs)
            raise TrainingError(f"{len(failures)} of {len(members)} ensemble member(s) failed on Ray:\n"
                                + "\n".join(f"  {line}" for line in failures),
                                hint=f"the {kept} finished member(s) are kept; fix the cause and rerun the same "
                                     "command: finished members are reused, only the failed ones train again")
        reused = [k not in todo for k in range(len(members))]
        return Obtained(list(runs), reused, [m.note for m in members])

    def _task_device(self, device: str) -> str:
        if self.resources.gpus > 0:
            return device
        if device == "cuda":
            raise TrainingError("--device cuda with Ray needs a GPU per member task",
                                hint="pass --gpus-per-member 1 (or a fraction such as 0.5)")
        # A task that reserved no GPU must not take one that another task reserved.
        return "cpu"

    def _run_tasks(self, members, todo, runs, root: Path, device: str, member_options, say) -> list[str]:
        ray = self.ray
        env = forwarded_env()
        remote = ray.remote(train_member).options(num_cpus=self.resources.cpus, num_gpus=self.resources.gpus,
                                                  max_retries=0, runtime_env={"env_vars": env})
        started = time.perf_counter()
        pending = {}
        for k in todo:
            member = members[k]
            options = member_options(member, out=root, device=device, quiet=True)
            payload = json.dumps({"spec": member.spec, "options": options_to_json(options),
                                  "threads": self.resources.threads})
            pending[remote.remote(payload)] = k
            say(f"{member.folder}: submitted to Ray" + (f" ({member.note})" if member.note else ""))
        failures = []
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ref)
            folder = members[k].folder
            try:
                runs[k] = Run(Path(ray.get(ref)))
            except Exception as exc:  # a task's own error arrives wrapped in Ray's error type
                message = describe_failure(exc)
                failures.append(f"{folder}: {message}")
                say(f"{folder}: FAILED: {message}")
                continue
            say(f"{folder}: finished {runs[k].name} ({time.perf_counter() - started:.1f}s since submit)")
        return failures

    def _connected(self):
        return _RaySession(self.ray, self.address, self.resources)


class _RaySession:
    """Joins the given cluster, or starts a local instance; shuts down only what it started."""

    def __init__(self, ray, address: str | None, resources: Resources) -> None:
        self.ray, self.address, self.resources = ray, address, resources
        self.started = False

    def __enter__(self):
        ray = self.ray
        if ray.is_initialized():
            return self
        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.address:
                _probe(self.address)
                ray.init(address=self.address, **quiet)
            else:
                # "local" starts a new instance even where `ray start` left one running (or a stale record of one)
                ray.init(address="local", num_cpus=os.cpu_count() or 1, _node_ip_address=LOCAL_HOST,
                         dashboard_host=LOCAL_HOST, **quiet)
        except ConnectionError as exc:
            raise TrainingError(f"cannot reach the Ray cluster at {self.address!r}: {exc}",
                                hint="check the address printed by `ray start --head`; a cluster with token "
                                     "authentication (Ray's default) also needs RAY_AUTH_MODE=token here and its "
                                     "token in ~/.ray/auth_token or RAY_AUTH_TOKEN") from None
        self.started = True
        if not self.address:
            total = ray.cluster_resources()
            for key, wanted in (("CPU", self.resources.cpus), ("GPU", self.resources.gpus)):
                if wanted > total.get(key, 0):
                    self.__exit__(None, None, None)
                    raise TrainingError(f"each member asks for {wanted:g} {key}(s), but this machine's local Ray "
                                        f"instance has {total.get(key, 0):g}", hint="lower --cpus-per-member / "
                                        "--gpus-per-member, or pass --address of a cluster that has them")
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _probe(address: str) -> None:
    """Fail fast on a HOST:PORT nobody listens on: Ray itself would retry for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConnectionError(f"{exc.strerror or exc}") from None


def import_ray():
    try:
        import ray
    except ImportError:
        raise TrainingError("--executor ray needs Ray, which is not installed in this environment",
                            hint=INSTALL_HINT) from None
    return ray


def describe_failure(exc: BaseException) -> str:
    """One line for a failed task: the mmzoo error's message and hint, else the exception's type and text."""
    from mmzoo.errors import MmzooError

    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, MmzooError):
        return cause.message + (f" (hint: {cause.hint})" if cause.hint else "")
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def options_to_json(options) -> dict:
    """The trainer Options a Ray task needs, as JSON-safe values (exact: floats keep their repr)."""
    def array(value):
        return None if value is None else np.asarray(value).tolist()

    return {"out": str(options.out), "device": options.device, "run_name": options.run_name,
            "train_rows": array(options.train_rows), "sample_weights": array(options.sample_weights),
            "extra_spec": options.extra_spec}


def train_member(payload: str) -> str:
    """A Ray task: train one member described by JSON ``payload``; returns its run folder's path."""
    import torch

    from mmzoo.train.trainer import Options, train

    job = json.loads(payload)
    torch.set_num_threads(job["threads"])
    raw = job["options"]
    options = Options(out=Path(raw["out"]), device=raw["device"], run_name=raw["run_name"], quiet=True,
                      train_rows=None if raw["train_rows"] is None else np.asarray(raw["train_rows"], np.int64),
                      sample_weights=None if raw["sample_weights"] is None else
                      np.asarray(raw["sample_weights"], np.float64),
                      extra_spec=raw["extra_spec"])
    return str(train(job["spec"], options).path)


def make_executor(name: str, *, address: str | None = None, cpus: float | None = None, gpus: float | None = None,
                  resources: dict | None = None):
    """The executor `mmzoo ensemble --executor NAME` asks for; CLI values override registry ``resources``."""
    ray_only = [flag for flag, value in (("--address", address), ("--cpus-per-member", cpus),
                                         ("--gpus-per-member", gpus)) if value is not None]
    if name == "local":
        if ray_only:
            raise TrainingError(f"{', '.join(ray_only)} only apply to --executor ray",
                                hint="add --executor ray, or leave them out")
        return LocalExecutor()
    if name != "ray":
        raise TrainingError(f"unknown executor {name!r}", hint="use --executor local or --executor ray")
    from mmzoo.zoo import schema

    defaults = resources or {}
    chosen = Resources(cpus=float(cpus if cpus is not None else defaults.get("cpus", 1.0)),
                       gpus=float(gpus if gpus is not None else defaults.get("gpus", 0.0)))
    for key in ("cpus", "gpus"):
        complaint = schema.param("resources", key).check(getattr(chosen, key))  # nan and inf included
        if complaint:
            raise TrainingError(f"each member needs a positive CPU count and a non-negative GPU count: {key} per "
                                f"member {complaint}", hint="e.g. --cpus-per-member 1 --gpus-per-member 0")
    return RayExecutor(chosen, address)
