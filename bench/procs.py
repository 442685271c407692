"""Processes for the benchmark: start, track by PID, measure (/proc), and always stop.

Every process the harness starts itself is a :class:`Managed` (its PID kept, its output in a log
file, stopped by PID with SIGTERM then SIGKILL). The peers' processes are started by the peers'
own scripts, which write ``run/NAME.pid``; they are stopped with the peers' ``stop_all.sh``,
which kills exactly those PIDs. Nothing here kills by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class HarnessError(RuntimeError):
    """Something the harness needs is missing or broken; the message says what."""


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"process for port {port} exited with status {proc.returncode}")
        time.sleep(0.1)
    raise HarnessError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def listener_pids(port: int) -> set[int]:
    """PIDs owning a listening socket on ``port`` (from ``ss -ltnpH``)."""
    out = subprocess.run(  # noqa: S603
        ["/usr/bin/ss", "-ltnpH", f"sport = :{port}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout
    pids: set[int] = set()
    for part in out.split("pid=")[1:]:
        digits = part.split(",", 1)[0]
        if digits.isdigit():
            pids.add(int(digits))
    return pids


@dataclass
class Managed:
    """A subprocess started by the harness, stopped by its PID."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            print(f"stopped {self.name} (pid {self.pid})", flush=True)


def start_managed(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    cwd: Path,
    env: Mapping[str, str],
    log_dir: Path,
    timeout: float = 30.0,
) -> Managed:
    """Start ``argv``, wait until it listens on ``port``, and check that it owns the socket."""
    if port_open(port):
        raise HarnessError(f"port {port} is already in use; not starting {name}")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the harness only; it stops us in order
        )
    managed = Managed(name, proc, log)
    try:
        wait_port(port, timeout, proc)
        owners = listener_pids(port)
        if owners and proc.pid not in owners:
            raise HarnessError(f"port {port} is owned by {owners}, not by {name} ({proc.pid})")
    except BaseException:
        managed.stop()
        raise
    print(f"{name} up on 127.0.0.1:{port} (pid {proc.pid}, log {log})", flush=True)
    return managed


# --- /proc measurements ------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (bounded by the number of processes)."""
    kids = _children()
    tree: list[int] = []
    todo = [pid]
    while todo and len(tree) < 10_000:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime+stime (all threads) plus cutime+cstime (reaped children) summed over ``pids``."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_mb(pids: Sequence[int]) -> tuple[float, float]:
    """(sum of VmHWM, sum of VmRSS) over ``pids``, in MB."""
    hwm = sum(_status_kb(p, "VmHWM") for p in pids)
    rss = sum(_status_kb(p, "VmRSS") for p in pids)
    return hwm / 1024, rss / 1024


def reset_peak_rss(pids: Sequence[int]) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/PID/clear_refs``); False if refused."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def machine_busy() -> tuple[float, float]:
    """(busy seconds, total seconds) of all CPUs so far, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def pidfile(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        if alive(pid):
            return pid
    return None
