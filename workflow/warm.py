"""A warm worker: rule jobs skip the ~11 s of `import torch, megatron.core, transformers, wandb`.

`python -m workflow.warm -m workflow.train.pretrain --spec S` means exactly `python -m
workflow.train.pretrain --spec S`. When the workflow started a warm server on this host
(SCALEDAG_WARM=<host>:<socket>, set by rules/common.smk for local runs), this client hands the
command to it instead: it sends its argv, cwd, environment and its stdin/stdout/stderr file
descriptors (SCM_RIGHTS) over a Unix socket; the server, which imported the heavy third-party
packages once, forks a child that adopts all of them and runs the module as `__main__`. The
client forwards SIGTERM/SIGINT/SIGHUP to the child's process group and exits with its status.

The cold path is the plain command: without the variable, on another host (a cluster node),
inside an srun/MPI/torchrun rank, or when the server cannot be reached, the client `exec`s
`python -m <module> args...` in its own place. Nothing is shared between jobs but what the
server imported before it forked, and it never imports our own code (`workflow.*`, `analysis.*`)
or runs torch ops, so each child starts from the state a fresh interpreter would reach after the
same imports. The server checks it is single-threaded (native threads included) before it serves,
because forking a multi-threaded process can deadlock; otherwise it exits and jobs run cold.

What a killed job leaves behind: a client killed with SIGKILL closes its socket, and the server
SIGKILLs that child's process group; the server exits (killing its children) when the workflow
stops or dies. Snakemake's `benchmark:` TSVs measure the client's process tree, so under the warm
worker their wall time (`s`) is exact but memory and CPU columns cover the client only.

Only the standard library is imported by the client, so the cold path costs ~30 ms."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

PYTHON = "python -m workflow.warm"  # a drop-in for `python` in the rules' commands
ENV = "SCALEDAG_WARM"
# A launcher that started this process as one rank of a job: its ranks belong to that launcher
# (and its cgroup, accounting and signals), never to a server the workflow started elsewhere.
LAUNCHER_VARS = ("SLURM_STEP_ID", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID")
# Third-party modules a job may need, imported once by the server. Our own packages are not listed:
# importing them would freeze the code a job runs at the moment the workflow started.
PRELOAD = (
    "numpy",
    "pandas",
    "torch",
    "torch.distributed",
    "megatron.core",
    "megatron.core.models.gpt",
    "megatron.core.pipeline_parallel",
    "megatron.core.dist_checkpointing",
    "megatron.core.optimizer",
    "transformers",
    "transformers.models.gpt_neox",
    "transformers.models.llama",
    "tokenizers",
    "wandb",
    "lm_eval",
    "lm_eval.api.model",
    "matplotlib",
    "matplotlib.pyplot",
    "scipy.optimize",
    "sklearn.linear_model",
)
# Environment variables that the preloaded packages read once, at import (e.g. huggingface_hub's
# HF_HUB_OFFLINE, torch's TORCH_* switches): a job whose value differs from the server's runs cold.
# The thread counts Snakemake sets per job (OMP_NUM_THREADS, ...) are exempt: torch reads them when
# its pool first starts, which the server never does, and the child applies them (see _run_child).
IMPORT_TIME_ENV = (
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "CUDA_", "NCCL_", "NVTE_", "HIP_", "ROCM",
    "MEGATRON", "WANDB_", "LD_", "PYTHON", "KMP_", "MPL", "TRITON",
)  # fmt: skip
_HEADER = struct.Struct("!Q")


# --- client -------------------------------------------------------------------------------------


def _cold(module: str, args: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def _server_address(env: dict) -> str | None:
    """The socket path when a server of this host may take the job, else None (run cold)."""
    value = env.get(ENV, "")
    host, sep, path = value.partition(":")
    if not sep or host != socket.gethostname() or any(k in env for k in LAUNCHER_VARS):
        return None
    return path


def _send(sock: socket.socket, obj: dict, fds: list[int] = ()) -> None:
    data = json.dumps(obj).encode()
    msg = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [msg], list(fds))
        sock.sendall(msg[sent:])
    else:
        sock.sendall(msg)


def _recv(sock: socket.socket, with_fds: bool = False) -> tuple[dict | None, list[int]]:
    """One length-prefixed JSON message (None at EOF) and any descriptors that came with it."""
    buf, fds = b"", []
    while len(buf) < _HEADER.size or len(buf) < _HEADER.size + _HEADER.unpack(buf[: _HEADER.size])[0]:
        if with_fds and not fds:
            chunk, got, _flags, _addr = socket.recv_fds(sock, 65536, 3)
            fds = list(got)
        else:
            chunk = sock.recv(65536)
        if not chunk:
            return None, fds
        buf += chunk
    (n,) = _HEADER.unpack(buf[: _HEADER.size])
    return json.loads(buf[_HEADER.size : _HEADER.size + n]), fds


def client(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "-m":
        sys.stderr.write("usage: python -m workflow.warm -m <module> [args...]  (same as python -m <module>)\n")
        return 2
    module, args = argv[1], argv[2:]
    path = _server_address(os.environ)
    if path is None:
        _cold(module, args)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(300)  # a server that accepted but hangs must not hold the job for ever
        sock.connect(path)
        request = {
            "module": module,
            "argv": args,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "python": [sys.executable, sys.prefix],
            "path": sys.path[1:],
        }
        _send(sock, request, [0, 1, 2])
        reply, _ = _recv(sock)
    except OSError:
        reply = None
    if not reply or "pid" not in reply:  # no server, or it refused (reply["cold"] says why): plain command
        sock.close()
        _cold(module, args)
    pid = reply["pid"]
    sock.settimeout(None)

    def forward(signum, _frame):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            reply, _ = _recv(sock)
            break
        except InterruptedError:
            continue
    if reply is None:
        sys.stderr.write(f"workflow.warm: the warm server stopped while running {module} (pid {pid})\n")
        return 1
    return int(reply["rc"])


# --- server -------------------------------------------------------------------------------------


# Native threads that may exist at fork time: jemalloc (pyarrow's allocator, under pandas) stops
# and restarts its background thread around fork() by its own atfork handlers.
FORK_SAFE_THREADS = ("jemalloc_bg_thd",)


def _unsafe_threads() -> list[str]:
    """Threads other than ours that a fork could catch holding a lock (names from /proc)."""
    import threading

    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    try:
        me = str(threading.get_native_id())
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            if tid != me and name not in FORK_SAFE_THREADS:
                others.append(f"native:{name}")
    except OSError:
        pass
    return others


def _preload(log) -> list[str]:
    import importlib

    loaded = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # an optional package absent or broken: its jobs import it themselves
            log(f"not preloaded: {name} ({type(exc).__name__}: {exc})")
    return loaded


def _job_threads() -> None:
    """The thread counts a cold start of this job would read from its environment when its native
    libraries load: OpenBLAS's (numpy, scipy), the OpenMP runtimes' and torch's intra-op pool."""
    env, cores = os.environ, str(os.cpu_count() or 1)
    omp = env.get("OMP_NUM_THREADS", cores)
    blas = env.get("OPENBLAS_NUM_THREADS", omp)
    if omp.isdigit() and blas.isdigit() and "numpy" in sys.modules:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits({"blas": int(blas), "openmp": int(omp)})
        except ImportError:
            pass
    if "torch" in sys.modules and env.get("OMP_NUM_THREADS", "").isdigit():  # unset: torch's own default
        sys.modules["torch"].set_num_threads(int(env["OMP_NUM_THREADS"]))


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the job (fds, cwd, env, argv), run its module, exit. Never returns."""
    rc = 1
    try:
        os.setpgid(0, 0)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = [request["cwd"], *request["path"]]
        sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115 - the job's descriptors
        sys.stdout = sys.__stdout__ = open(1, "w", closefd=False, buffering=1 if os.isatty(1) else -1)  # noqa: SIM115
        sys.stderr = sys.__stderr__ = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
        sys.argv = [request["module"], *request["argv"]]
        if "numpy" in sys.modules:  # a fresh interpreter seeds numpy's global generator from the OS
            sys.modules["numpy"].random.seed()
        _job_threads()
        import runpy

        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            rc = 0
        except SystemExit as exc:
            code = exc.code
            if code is None:
                rc = 0
            elif isinstance(code, int):
                rc = code
            else:
                sys.stderr.write(f"{code}\n")
                rc = 1
        except KeyboardInterrupt:
            rc = 130
        except BaseException:
            import traceback

            traceback.print_exc()
            rc = 1
        import threading

        for t in threading.enumerate():  # as the interpreter would at exit: wait for non-daemon threads
            if t is not threading.main_thread() and not t.daemon:
                t.join()
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    finally:
        os._exit(rc & 0xFF if rc >= 0 else 1)


def serve(path: str, parent: int) -> int:
    import gc
    import select

    def log(msg: str) -> None:
        sys.stderr.write(f"workflow.warm[{os.getpid()}]: {msg}\n")
        sys.stderr.flush()

    children: dict[int, socket.socket] = {}
    stopping = []

    def stop(*_):
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _SERVER_ENV.update(_import_time_env(os.environ))
    # OpenBLAS starts its thread pool when numpy loads; with one thread it starts none, and each
    # child raises it to its job's count (_job_threads).
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        loaded = _preload(log)
        # Hand every object the preload made to the permanent generation: the jobs' collections then
        # skip them, as a fresh interpreter's never see them (without this a forked job's Python-heavy
        # code ran 4-6x slower on a 300k-dict loop and the tiny training loop ~25% slower: each
        # full collection walked ~300k extra objects, writing to their pages and so copying them).
        gc.collect()
        gc.freeze()
        threads = _unsafe_threads()
        if threads:
            log(f"threads {threads} after the preload; forking would be unsafe, so jobs run cold")
            return 1
        # Listen only now: a job that starts during the preload (seconds) finds no socket and runs
        # cold at once, rather than waiting; a one-job DAG (`snakemake plan`) never waits for it.
        if os.path.exists(path):
            os.unlink(path)
        listener.bind(path)
        listener.listen(64)
        log(f"ready: {len(loaded)} modules preloaded")
        while not stopping and os.getppid() == parent:
            conns = list(children.values())
            try:
                ready, _, _ = select.select([listener, *conns], [], [], 0.2)
            except InterruptedError:
                continue
            for sock in ready:
                if sock is listener:
                    _accept(listener, children, log)
                else:  # a client's socket became readable: it went away, so its job goes too
                    pid = next(p for p, s in children.items() if s is sock)
                    _kill(pid)
            _reap(children)
    finally:
        for pid in list(children):
            _kill(pid)
        _reap(children, block=True)
        listener.close()
        if os.path.exists(path):
            os.unlink(path)
    return 0


def _accept(listener: socket.socket, children: dict, log) -> None:
    conn, _ = listener.accept()
    conn.settimeout(10)
    try:
        request, fds = _recv(conn, with_fds=True)
    except (OSError, ValueError) as exc:
        log(f"bad request ({exc}); the client runs cold")
        conn.close()
        return
    refusal = None if request is None or len(fds) != 3 else _refusal(request)
    if refusal is None and _gone(conn):
        refusal = "the client went away"  # it timed out while we preloaded, and runs cold already
    if request is None or len(fds) != 3 or refusal:
        for fd in fds:
            os.close(fd)
        if refusal:
            log(f"{request['module']} runs cold: {refusal}")
            try:
                _send(conn, {"cold": refusal})
            except OSError:
                pass
        conn.close()
        return
    pid = os.fork()
    if pid == 0:  # the job: it keeps none of the server's sockets (its own client's included)
        for sock in (listener, conn, *children.values()):
            sock.close()
        _run_child(request, fds)
    for fd in fds:
        os.close(fd)
    conn.settimeout(None)
    try:
        _send(conn, {"pid": pid})
    except OSError:
        _kill(pid)
    children[pid] = conn


_SERVER_ENV: dict[str, str] = {}


def _import_time_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV)}


def _refusal(request: dict) -> str | None:
    """Why this job may not run in this server (None: it may)."""
    python, prefix = request["python"]
    if (os.path.realpath(python), prefix) != (os.path.realpath(sys.executable), sys.prefix):
        return f"its python is {python} in {prefix}, the server's {sys.executable} in {sys.prefix}"  # --use-conda
    mine, theirs = _SERVER_ENV, _import_time_env(request["env"])
    diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    return f"{', '.join(diff)} differ from the warm server's, which read them at import" if diff else None


def _gone(conn: socket.socket) -> bool:
    """Has the client closed its end (it sends nothing after its request, so readable means EOF)?"""
    conn.setblocking(False)
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        conn.setblocking(True)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(children: dict, block: bool = False) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        rc = os.waitstatus_to_exitcode(status)
        try:
            _send(conn, {"rc": rc if rc >= 0 else 128 - rc})
        except OSError:
            pass
        conn.close()


# --- started and stopped by the workflow -------------------------------------------------------


def start(directory: str, parent: int | None = None):
    """Start a server for the workflow process `parent` (default: this one); returns (Popen, env value).

    Its log is <directory>/warm.log; the socket lives in a fresh temp directory (a Unix socket path
    must stay under ~100 bytes, which results paths on a cluster file system often exceed)."""
    import subprocess
    import tempfile

    os.makedirs(directory, exist_ok=True)
    sock = os.path.join(tempfile.mkdtemp(prefix="scaledag-warm-"), "s")
    log = open(os.path.join(directory, "warm.log"), "ab")  # noqa: SIM115 - the server's stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflow.warm", "serve", "--socket", sock, "--parent", str(parent or os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    return proc, f"{socket.gethostname()}:{sock}"


def stop(proc) -> None:
    """Stop the server and remove its socket's directory (also when it had already exited)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except Exception:
            proc.kill()
    try:  # the socket's directory, from the command start() gave the server
        os.rmdir(os.path.dirname(proc.args[proc.args.index("--socket") + 1]))
    except OSError:
        pass


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        import argparse

        ap = argparse.ArgumentParser(prog="python -m workflow.warm serve")
        ap.add_argument("--socket", required=True)
        ap.add_argument("--parent", type=int, required=True)
        a = ap.parse_args(argv[1:])
        return serve(a.socket, a.parent)
    return client(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
