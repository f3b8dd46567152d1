"""Grids of independent runs: ``companion.runs.map(recipe, configs)``.

A run is a module-level function (importable by a worker process) applied to one config,
usually a recipe of :mod:`companion.experiments` (a frozen dataclass with the seed, and
``run(config) -> dict``). :func:`map` applies it to a list of configs and returns the
results in order. The notebooks tell the story; the grid is data.

**Cache.** Every finished run is stored on disk under a key made of the function's qualified
name, the canonical config (:func:`canonical`; the seed is a field), a digest of the package's
source (``src/companion/**/*.py``, plus the function's own file when it lives outside the
package), the torch version and the device it ran on (``cpu`` with its thread count and the
CPU code-path variables of :data:`companion.repro.CODE_PATH_ENV`, or ``cuda``). A rerun after a
kill reuses what finished and computes the rest; a change of config or of code reruns what it
touches and nothing else. The store is joblib's ``Memory`` (it hashes the key and writes each
entry to a temporary file that is renamed into place, so a kill never leaves half an entry);
each entry also holds its own key, and an entry whose key differs from the one asked for is
never returned. Location: ``$COMPANION_RUNS`` (``off`` disables the cache), default
``results/runs/`` (ignored by git). :func:`map` prints one line saying how many runs came from
the cache, and returns a list that carries the counts (:class:`Results`).

**Executors**, chosen by ``executor=``, else ``$COMPANION_EXECUTOR``, else ``local``:

* ``local``: in this process, one run after another; on CUDA, ``workers=k`` trains up to
  ``k`` runs side by side, each on its own stream (:func:`companion.train.side_by_side`;
  such recipes must draw from their own generators, not the global RNG).
* ``ray``: each run is a Ray task on the cluster at ``address=`` / ``$COMPANION_RAY_ADDRESS``
  (none: a private local cluster), requesting the run's :class:`Resources` (a config declares
  them as ``resources: ClassVar[Resources]``; default one CPU, and a whole GPU on a cluster
  with GPUs). A worker whose process dies is retried (``max_retries``, default 3); results are
  stored by the driver as they arrive, so a driver killed part-way loses only the runs in
  flight. Ray is an optional extra (``pip install -e '.[cluster]'``); the local executor does
  not import it. Token authentication is required by default (``RAY_AUTH_MODE=token`` unless
  set otherwise) and the dashboard stays off unless ``$COMPANION_RAY_DASHBOARD=1``.

A run that raises does not stop the others: their results are stored, and :class:`RunsFailed`
names each failing run's config once the grid is done. :func:`tally` counts the runs this
process took from the cache and computed.

:func:`run_notebooks` runs whole notebooks as Ray tasks (one GPU each on a GPU cluster), for
``companion reproduce --executor ray --notebook-tasks``.
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import hashlib
import inspect
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")
R = TypeVar("R")

RUNS_ENV = "COMPANION_RUNS"
EXECUTOR_ENV = "COMPANION_EXECUTOR"
ADDRESS_ENV = "COMPANION_RAY_ADDRESS"
DASHBOARD_ENV = "COMPANION_RAY_DASHBOARD"
THREADS_ENV = "COMPANION_THREADS"
EXECUTORS = ("local", "ray")
_OFF = {"off", "none", "0", "false", "no"}
_PACKAGE = Path(__file__).resolve().parent


# -- resources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """What one run asks a Ray cluster for.

    ``gpus`` is the share of one GPU the run takes when it goes to a GPU (1 for a ResNet run,
    0.25 for a small net: four side by side); on a cluster without GPUs the run asks for
    ``cpus`` only. A recipe's config declares them as a class attribute, e.g.
    ``resources: ClassVar[Resources] = Resources(gpus=0.25)`` (not a field: resources never
    change a result, so they are not part of the cache key).
    """

    cpus: float = 1.0
    gpus: float = 1.0
    memory_gb: float | None = None

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0 or (self.memory_gb is not None and self.memory_gb <= 0):
            raise ValueError(f"resources must be non-negative: {self}")


def resources_of(config: Any, override: Resources | Mapping[str, float] | None = None) -> Resources:
    """``override``, else the config's ``resources`` attribute, else ``Resources()``."""
    chosen = override if override is not None else getattr(config, "resources", None)
    if chosen is None:
        return Resources()
    if isinstance(chosen, Mapping):
        return Resources(**chosen)
    if not isinstance(chosen, Resources):
        raise TypeError(f"resources must be a companion.runs.Resources, got {chosen!r}")
    return chosen


# -- keys ------------------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data that two equal configs always spell the same way.

    Dataclasses become ``{"__type__": "<module>.<qualname>", field: value, ...}`` (every
    field, in any order), tuples and lists become lists, sets sorted lists, enums their type
    and value, paths strings, NumPy scalars Python numbers, non-finite floats tagged strings.
    ``1``, ``1.0`` and ``True`` stay distinct. Anything else raises ``TypeError``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, enum.Enum):
        return {"__enum__": f"{type(value).__module__}.{type(value).__qualname__}",
                "value": canonical(value.value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__type__": f"{type(value).__module__}.{type(value).__qualname__}"}
        for f in dataclasses.fields(value):
            out[f.name] = canonical(getattr(value, f.name))
        return out
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"config mappings need str keys: {value!r}")
        return {"__dict__": {k: canonical(v) for k, v in sorted(value.items())}}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)  # NumPy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return canonical(item())
    raise TypeError(f"cannot key a run on a value of type {type(value).__name__}: {value!r} "
                    "(configs hold numbers, strings, booleans, None, tuples, enums and dataclasses)")


def canonical_json(config: Any) -> str:
    return json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), allow_nan=False)


def qualified_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def _outside_package(fn: Callable[..., Any]) -> Path | None:
    """The source file of ``fn`` when it lives outside the package (e.g. a test recipe)."""
    try:
        file = inspect.getsourcefile(fn)
    except TypeError:
        return None
    if not file:
        return None
    path = Path(file).resolve()
    return None if path.is_relative_to(_PACKAGE) or not path.is_file() else path


def code_digest(fn: Callable[..., Any]) -> str:
    """Digest of the package's source, and of ``fn``'s file when it lies outside the package."""
    digest = _tree_digest(_PACKAGE)
    outside = _outside_package(fn)
    if outside is not None:
        digest += "+" + hashlib.sha256(outside.read_bytes()).hexdigest()[:16]
    return digest


def _stale_modules(fn: Callable[..., Any], started: float) -> list[str]:
    """Loaded modules (the package's and ``fn``'s) whose file changed after ``started``."""
    names = [m for m in builtins.list(sys.modules) if m == "companion" or m.startswith("companion.")]
    stale = []
    for name in {*names, fn.__module__}:
        file = getattr(sys.modules.get(name), "__file__", None)
        try:
            if file and os.stat(file).st_mtime > started:
                stale.append(name)
        except OSError:
            stale.append(name)
    return sorted(stale)


def _process_start() -> float | None:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - no psutil, or a platform without it: skip the check
        return None


def device_of(kind: str, threads: int | None = None) -> dict[str, Any]:
    """The device part of a run's key: ``cuda``, or ``cpu`` with threads and code-path variables."""
    from .repro import CODE_PATH_ENV

    if kind == "cuda":
        return {"kind": "cuda"}
    if kind != "cpu":
        raise ValueError(f"device kind must be 'cpu' or 'cuda', got {kind!r}")
    return {"kind": "cpu", "threads": int(threads or 1),
            "code_path": {k: os.environ[k] for k in CODE_PATH_ENV if k in os.environ}}


def run_key(fn: Callable[..., Any], config: Any, device: Mapping[str, Any],
            source: str | None = None) -> dict[str, Any]:
    """What a cached result is keyed on (and stored with)."""
    import torch

    return {"fn": qualified_name(fn), "config": canonical_json(config),
            "source": source or code_digest(fn), "torch": torch.__version__, "device": dict(device)}


# -- the store -------------------------------------------------------------------------------


def cache_dir() -> Path | None:
    """``$COMPANION_RUNS`` (``off``: no cache), default ``<results>/runs``."""
    env = os.environ.get(RUNS_ENV)
    if env is not None and env.strip().lower() in _OFF:
        return None
    if env:
        return Path(env).expanduser().resolve()
    from .pipeline.paths import results_dir

    return results_dir() / "runs"


def _compute(key: dict, fn: Callable[[Any], Any], config: Any) -> dict:
    """The function joblib memoizes: only ``key`` is hashed; the entry keeps its key."""
    return {"key": key, "result": fn(config)}


class _Value:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, _config: Any) -> Any:
        return self.value


class _NotStored(Exception):
    pass


def _not_stored(_config: Any) -> Any:
    raise _NotStored


class Store:
    """Finished runs on disk (joblib ``Memory`` at ``location``), looked up by key."""

    def __init__(self, location: str | Path) -> None:
        import joblib

        self.location = Path(location)
        self.memory = joblib.Memory(str(self.location), verbose=0)
        self._cached = self.memory.cache(_compute, ignore=["fn", "config"])

    def get(self, key: dict) -> tuple[bool, Any]:
        """``(True, result)`` for a stored run with exactly this key, else ``(False, None)``."""
        try:
            if not self._cached.check_call_in_cache(key, None, None):
                return False, None
            entry = self._cached(key, _not_stored, None)
        except _NotStored:  # unreadable entry: joblib tried to recompute it
            return False, None
        if not isinstance(entry, dict) or entry.get("key") != key:  # written by other code
            return False, None
        return True, entry["result"]

    def put(self, key: dict, result: Any) -> None:
        self._cached.call(key, _Value(result), None)

    def __len__(self) -> int:
        return sum(1 for _ in self.location.rglob("output.pkl"))


# -- results and failures --------------------------------------------------------------------


class Results(builtins.list):
    """The results in order, with ``cached`` / ``computed`` counts, executor and seconds."""

    cached: int = 0
    computed: int = 0
    executor: str = "local"
    seconds: float = 0.0

    def summary(self, name: str) -> str:
        return (f"runs.map: {len(self)} run(s) of {name} [{self.executor}]: {self.cached} from the "
                f"cache, {self.computed} computed in {self.seconds:.1f} s")


@dataclass
class Failure:
    index: int
    config: Any
    error: BaseException
    traceback: str

    def describe(self) -> str:
        return f"run {self.index}: {self.config!r} raised {type(self.error).__name__}: {self.error}"


class RunsFailed(RuntimeError):
    """Some runs raised; ``failures`` names their configs, ``results`` holds the others."""

    def __init__(self, name: str, failures: list[Failure], results: Results, stored: bool = False) -> None:
        self.failures = failures
        self.results = results
        kept = len(results) - len(failures)
        lines = [f"{len(failures)} of {len(results)} run(s) of {name} failed "
                 f"({kept} other result(s) {'in the cache' if stored else 'returned in .results'}):"]
        lines += [f"  {f.describe()}" for f in failures]
        lines.append(f"first traceback:\n{failures[0].traceback}")
        super().__init__("\n".join(lines))


# -- map -------------------------------------------------------------------------------------


_TALLY = {"cached": 0, "computed": 0}


def tally() -> dict[str, int]:
    """Runs this process took from the cache and computed, over every :func:`map` so far
    (e.g. for a ledger: a notebook's wall time says little when most runs came from the cache)."""
    return dict(_TALLY)


def map(fn: Callable[[C], R], configs: Sequence[C], *, executor: str | None = None,  # noqa: A001
        **options: Any) -> list[R]:
    """``[fn(c) for c in configs]``, in order, from the cache where a run already finished.

    ``executor``: ``"local"`` or ``"ray"`` (default ``$COMPANION_EXECUTOR``, else local).
    Options: ``cache`` (``False`` disables it, a path moves it; default :func:`cache_dir`),
    ``workers`` (local, CUDA: runs side by side), ``address``, ``resources``, ``device``
    (``"cpu"``/``"cuda"``; default: cuda where the cluster has GPUs), ``max_retries`` (ray),
    ``quiet`` (no summary line). Returns a :class:`Results` list; raises :class:`RunsFailed`
    after the grid if any run raised.
    """
    known = {"cache", "workers", "address", "resources", "device", "max_retries", "quiet"}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    if getattr(fn, "__qualname__", "").count("<locals>") or getattr(fn, "__name__", "") == "<lambda>":
        raise ValueError(f"{fn!r} must be a module-level function (workers import it by name)")
    executor = (executor or os.environ.get(EXECUTOR_ENV) or "local").strip().lower()
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    in_main = fn.__module__ in ("__main__", "builtins") or fn.__module__.startswith("__")
    if executor == "ray" and in_main:
        raise ValueError(f"{fn.__qualname__} is defined in the notebook or script; the ray executor "
                         "needs a function of an importable module (e.g. companion.experiments)")
    configs = builtins.list(configs)
    name = qualified_name(fn)
    start = time.perf_counter()
    store, note = _open_store(fn, options.get("cache"), in_main)
    if note and not options.get("quiet"):
        print(f"runs.map: {note}", flush=True)
    if executor == "local":
        results, failures = _map_local(fn, configs, store, workers=options.get("workers") or 1)
    else:
        results, failures = _map_ray(fn, configs, store, address=options.get("address"),
                                     resources=options.get("resources"), device=options.get("device"),
                                     max_retries=options.get("max_retries", 3))
    results.executor = executor
    results.seconds = time.perf_counter() - start
    _TALLY["cached"] += results.cached
    _TALLY["computed"] += results.computed
    if not options.get("quiet"):
        print(results.summary(name), flush=True)
    if failures:
        raise RunsFailed(name, failures, results, stored=store is not None) from failures[0].error
    return results


def _open_store(fn: Callable[..., Any], cache: Any, in_main: bool) -> tuple[Store | None, str | None]:
    if isinstance(cache, str) and cache.strip().lower() in _OFF:
        cache = False
    if cache is False or in_main:
        return None, ("cache off: the function is defined in the notebook" if in_main and cache is not False
                      else None)
    location = cache_dir() if cache in (None, True) else Path(cache)
    if location is None:
        return None, None
    started = _process_start()
    stale = _stale_modules(fn, started) if started is not None else []
    if stale:
        return None, (f"cache off: {', '.join(stale)} changed on disk after this process loaded "
                      "it, so the code that runs may not be the code the key describes (restart the kernel)")
    return Store(location), None


def _lookup(store: Store | None, keys: list[dict]) -> tuple[dict[int, Any], list[int]]:
    found, todo = {}, []
    for index, key in enumerate(keys):
        hit, value = store.get(key) if store is not None else (False, None)
        if hit:
            found[index] = value
        else:
            todo.append(index)
    return found, todo


def _collect(n: int, found: dict[int, Any], computed: dict[int, Any]) -> Results:
    results = Results(found.get(i, computed.get(i)) for i in range(n))
    results.cached, results.computed = len(found), len(computed)
    return results


def _map_local(fn: Callable[[Any], Any], configs: list, store: Store | None, *,
               workers: int) -> tuple[Results, list[Failure]]:
    import torch

    from .train import side_by_side

    kind = "cuda" if torch.cuda.is_available() else "cpu"
    keys: list[dict] = []
    if store is not None:  # keys only matter for the cache
        device, source = device_of(kind, torch.get_num_threads()), code_digest(fn)
        keys = [run_key(fn, c, device, source) for c in configs]
        found, todo = _lookup(store, keys)
    else:
        found, todo = {}, builtins.list(range(len(configs)))
    computed: dict[int, Any] = {}
    failures: list[Failure] = []

    def one(index: int) -> None:
        try:
            result = fn(configs[index])
        except Exception as exc:  # noqa: BLE001 - recorded, raised after the grid
            failures.append(Failure(index, configs[index], exc, traceback.format_exc()))
            return
        if store is not None:
            store.put(keys[index], result)
        computed[index] = result

    side_by_side(one, [(i,) for i in todo], workers=max(1, int(workers)) if kind == "cuda" else 1)
    failures.sort(key=lambda f: f.index)
    return _collect(len(configs), found, computed), failures


# -- ray -------------------------------------------------------------------------------------


def connect(address: str | None = None) -> Any:
    """The ``ray`` module, connected to ``address`` (default ``$COMPANION_RAY_ADDRESS``).

    Token authentication is required unless ``RAY_AUTH_MODE`` says otherwise; without an
    address a private local cluster starts (dashboard off unless ``$COMPANION_RAY_DASHBOARD=1``).
    """
    imported_before = sys.modules.get("ray") is not None
    refresh = "RAY_AUTH_MODE" not in os.environ
    if refresh:
        os.environ["RAY_AUTH_MODE"] = "token"  # read when ray initializes its config
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the ray executor needs Ray: pip install -c constraints.txt -e '.[cluster]'") from exc
    if refresh and imported_before:  # ray read its config before we set the mode
        from ray._raylet import Config

        Config.initialize("")
    if ray.is_initialized():
        return ray
    address = address or os.environ.get(ADDRESS_ENV) or None
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        kwargs["include_dashboard"] = os.environ.get(DASHBOARD_ENV, "0") == "1"
    ray.init(address=address, **kwargs)
    return ray


def _remote_run(fn: Callable[[Any], Any], config: Any, expected: dict) -> dict:
    """One run on a Ray worker: same code and device as the key says, else refuse."""
    import torch

    device = expected["device"]
    if device.get("threads"):
        torch.set_num_threads(device["threads"])
    here = {"source": code_digest(fn), "torch": torch.__version__,
            "device": device_of("cuda" if torch.cuda.is_available() else "cpu", device.get("threads"))}
    wanted = {k: expected[k] for k in here}
    if here != wanted:
        raise RuntimeError(f"worker {platform.node()} (pid {os.getpid()}) differs from the driver: "
                           f"{here} != {wanted}; install the same commit on every node and start "
                           "the nodes with the same CPU code-path variables")
    start = time.perf_counter()
    result = fn(config)
    return {"result": result, "seconds": time.perf_counter() - start, "node": platform.node(),
            "pid": os.getpid()}


_REMOTE: dict[str, Any] = {}


def _remote(ray: Any, function: Callable[..., Any]) -> Any:
    if function.__name__ not in _REMOTE:
        _REMOTE[function.__name__] = ray.remote(function)
    return _REMOTE[function.__name__]


def _map_ray(fn: Callable[[Any], Any], configs: list, store: Store | None, *, address: str | None,
             resources: Any, device: str | None, max_retries: int) -> tuple[Results, list[Failure]]:
    ray = connect(address)
    if device is None:
        device = "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    source = code_digest(fn)
    plans, keys = [], []
    for config in configs:
        res = resources_of(config, resources)
        kind = "cuda" if device == "cuda" and res.gpus > 0 else "cpu"
        threads = int(os.environ.get(THREADS_ENV) or max(1, int(res.cpus)))
        options: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus if kind == "cuda" else 0,
                                   "max_retries": max_retries, "retry_exceptions": False}
        if res.memory_gb:
            options["memory"] = int(res.memory_gb * 2**30)
        keys.append(run_key(fn, config, device_of(kind, threads), source))
        plans.append(options)
    found, todo = _lookup(store, keys)
    remote = _remote(ray, _remote_run)
    pending = {remote.options(**plans[i]).remote(fn, configs[i], keys[i]): i for i in todo}
    computed: dict[int, Any] = {}
    failures: list[Failure] = []
    while pending:
        done, _ = ray.wait(builtins.list(pending), num_returns=1)
        for ref in done:
            index = pending.pop(ref)
            try:
                value = ray.get(ref)["result"]
            except Exception as exc:  # noqa: BLE001 - a RayTaskError, a worker crash past its retries
                cause = getattr(exc, "cause", None) or exc
                failures.append(Failure(index, configs[index], cause, str(exc)))
                continue
            if store is not None:
                store.put(keys[index], value)
            computed[index] = value
    failures.sort(key=lambda f: f.index)
    return _collect(len(configs), found, computed), failures


# -- whole notebooks as Ray tasks ------------------------------------------------------------


def _notebook_task(relative: str, source: bytes, profile: str, parameters: dict,
                   timeout: float | None, custom: bool, expected_source: str,
                   run_options: dict) -> dict:
    """Run one notebook on a worker in a scratch results folder; return what it wrote."""
    from .pipeline import notebooks

    here = _tree_digest(_PACKAGE)
    if here != expected_source:
        return {"error": f"worker {platform.node()} runs other code ({here} != {expected_source})",
                "seconds": 0.0, "files": {}, "output": None, "node": platform.node()}
    runs_dir = cache_dir()  # the worker's own, kept across tasks
    with tempfile.TemporaryDirectory(prefix="companion-nb-") as scratch:
        root = Path(scratch)
        nb = root / "notebooks" / relative
        nb.parent.mkdir(parents=True)
        nb.write_bytes(source)
        results = root / "results"
        saved = {k: os.environ.get(k) for k in ("COMPANION_RESULTS", RUNS_ENV, EXECUTOR_ENV)}
        os.environ.update({"COMPANION_RESULTS": str(results), EXECUTOR_ENV: "local",
                           RUNS_ENV: str(runs_dir) if runs_dir else "off"})
        try:
            out = notebooks.default_output(nb, profile, root / "notebooks", custom=custom)
            result = notebooks.run(nb, profile, parameters or None, out, timeout=timeout, **run_options)
            files = {p.relative_to(results).as_posix(): p.read_bytes()
                     for p in results.rglob("*") if p.is_file()}
            output = out.relative_to(results).as_posix() if out.is_relative_to(results) else None
            if output and output not in files and out.exists():
                files[output] = out.read_bytes()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return {"error": result.error, "seconds": result.seconds, "files": files, "output": output,
            "node": platform.node()}


def run_notebooks(paths_: Sequence[Path], profile: str, parameters: Mapping[str, Any] | None = None,
                  *, root: Path | None = None, address: str | None = None,
                  timeout: float | None = None, progress: Callable[[Any, int], None] | None = None,
                  **run_options: Any) -> list:
    """Run each notebook as one Ray task (one GPU each on a GPU cluster, else one CPU).

    Each task executes the notebook on its worker into a scratch results folder and sends
    back every file it wrote (executed notebook, ledger, figures); they land under this
    machine's results folder at the same relative paths. Returns ``notebooks.RunResult``\\ s
    in the order of ``paths_``; ``progress(result, index)`` is called as each one finishes;
    ``run_options`` go to ``notebooks.run`` on the worker.
    """
    from .pipeline import notebooks
    from .pipeline.paths import notebooks_dir, results_dir

    ray = connect(address)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    remote = _remote(ray, _notebook_task)
    source = _tree_digest(_PACKAGE)
    custom = notebooks.is_custom(dict(parameters or {}))
    base = Path(root) if root else notebooks_dir()
    pending = {}
    for index, path in enumerate(paths_):
        path = Path(path)
        relative = path.resolve().relative_to(base.resolve()).as_posix()
        ref = remote.options(num_cpus=1, num_gpus=gpus, max_retries=1).remote(
            relative, path.read_bytes(), profile, dict(parameters or {}), timeout, custom, source,
            run_options)
        pending[ref] = (index, path)
    out: dict[int, Any] = {}
    results = results_dir()
    while pending:
        done, _ = ray.wait(builtins.list(pending), num_returns=1)
        for ref in done:
            index, path = pending.pop(ref)
            try:
                value = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task itself died
                value = {"error": f"{type(exc).__name__}: {exc}", "seconds": 0.0, "files": {},
                         "output": None}
            for relative, data in value["files"].items():
                target = results / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".part")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            output = results / value["output"] if value["output"] else None
            out[index] = notebooks.RunResult(path, output, profile, value["seconds"], value["error"])
            if progress is not None:
                progress(out[index], index)
    return [out[i] for i in range(len(paths_))]
