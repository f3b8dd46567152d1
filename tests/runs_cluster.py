"""A real local Ray cluster in a network namespace of its own, for tests and benchmarks.

``Cluster()`` makes a network namespace (``unshare --net``; loopback only, so Ray advertises
127.0.0.1 and nothing leaves the machine), copies the package and ``runs_recipes`` to a scratch
folder (the cluster and its drivers import that copy: edits to the working tree meanwhile change
neither the code nor its digest), and starts ``ray start --head`` there with 2 CPUs, no
dashboard and token authentication on (a fresh token in the scratch folder). ``driver(...)``
runs ``python -m runs_driver ...`` in the namespace; ``close()`` ends the namespace's
processes by id and removes the scratch folder. Needs root and util-linux/iproute2.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
RAY = Path(sys.executable).parent / "ray"
PORT = 6391
ADDRESS = f"127.0.0.1:{PORT}"


def available() -> str | None:
    """Why a cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "needs root (CI runs as root)"
    missing = [t for t in ("unshare", "nsenter", "ip") if not shutil.which(t)]
    if missing:
        return f"needs {', '.join(missing)}"
    if not RAY.exists():
        return "needs Ray (pip install -e '.[cluster]')"
    return None


def _processes_in(netns: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "net") == netns:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Cluster:
    """``with Cluster() as c: c.driver("grid", ...)``; see the module docstring."""

    def __enter__(self) -> "Cluster":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="crt", dir="/tmp"))  # short: Ray's socket paths
        self.snapshot = self.scratch / "py"
        shutil.copytree(ROOT / "src" / "companion", self.snapshot / "companion",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("runs_recipes.py", "runs_driver.py"):
            shutil.copy(TESTS / name, self.snapshot / name)
        token = self.scratch / "token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        (self.scratch / "home").mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_", "COMPANION_EXECUTOR", "COMPANION_RAY", "COMPANION_RUNS"))}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0",
                   PYTHONPATH=str(self.snapshot), COMPANION_THREADS="1", COMPANION_RAY_ADDRESS=ADDRESS,
                   COMPANION_RUNS="off", COMPANION_RESULTS=str(self.scratch / "results"),
                   HOME=str(self.scratch / "home"), PYTHONDONTWRITEBYTECODE="1")
        self.env = env
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "900"])
        mine = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                netns = os.readlink(f"/proc/{self.holder.pid}/ns/net")
            except OSError:
                netns = mine
            if netns != mine:
                self.netns = netns
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("unshare --net did not make a network namespace")
        self.run(["ip", "link", "set", "lo", "up"], check=True)
        self.start()

    def start(self, attempts: int = 3) -> None:
        """``ray start --head``; again (after ending what it left) if the raylet gave up.

        On a busy machine Ray's agents can take longer to import than the raylet waits for
        them (a fixed 15-30 s in Ray 2.60), and the raylet then aborts: the daemons run at a raised
        CPU weight, and a failed start is retried.
        """
        for attempt in range(1, attempts + 1):
            command = self.command([str(RAY), "start", "--head", f"--port={PORT}", "--node-ip-address=127.0.0.1",
                                    "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
                                    "--include-log-monitor=false", "--disable-usage-stats",
                                    "--object-store-memory=100000000", "--temp-dir", str(self.scratch / f"ray{attempt}")])
            # A session of its own whose CPU weight is raised (autogroup nice -10; root only, else
            # ignored): the cluster's daemons inherit it, so on a busy machine Ray's agents still
            # start within the fixed time the raylet waits for them.
            boosted = ["sh", "-c", 'echo -10 > /proc/self/autogroup 2>/dev/null; exec "$@"', "sh", *command]
            started = subprocess.run(boosted, env=self.env, cwd=self.scratch, start_new_session=True,
                                     capture_output=True, text=True, timeout=180)
            if started.returncode == 0:
                return
            self.end_processes()
        raise RuntimeError(f"ray start failed {attempts} times; last:\n{started.stdout}\n{started.stderr}")

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *argv]

    def run(self, argv: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), env={**self.env, **(env or {})}, cwd=self.scratch, **kwargs)

    def spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.command([sys.executable, "-m", "runs_driver", *args]),
                                env={**self.env, **(env or {})}, cwd=self.scratch,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def driver(self, *args: str, env: dict | None = None, timeout: float = 120) -> tuple[dict, str]:
        proc = self.run([sys.executable, "-m", "runs_driver", *args], env=env, capture_output=True,
                        text=True, timeout=timeout)
        return parse(proc.stdout, proc.stderr), proc.stdout

    def end_processes(self) -> None:
        """End every process of the namespace but its holder, by id (SIGTERM, then SIGKILL)."""
        netns = getattr(self, "netns", None)
        if not netns or netns == os.readlink("/proc/self/ns/net"):  # never the machine's own
            return
        pids = [p for p in _processes_in(netns) if p != self.holder.pid]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.1)
            pids = [p for p in pids if _alive(p)]

    def close(self) -> None:
        if hasattr(self, "holder"):
            self.end_processes()
            self.holder.kill()
            self.holder.wait()
        shutil.rmtree(getattr(self, "scratch", "/nonexistent"), ignore_errors=True)


def parse(stdout: str, stderr: str = "") -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"driver printed no result\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}")


