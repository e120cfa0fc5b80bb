"""One exception type for bad input, so every entry point can print it on one line and exit 2."""

EXIT_IO = 74  # EX_IOERR: an output or checkpoint could not be written (full disk, permissions)


class ScaleDAGError(Exception):
    """Bad input or configuration; the message names what is wrong and where, on one line."""

    exit_code = 2


TIMINGS_ENV = "SCALEDAG_TIMINGS"  # a JSON-lines file: each entry point appends its main()'s duration


def _record_timing(main, seconds: float) -> None:
    """One line for benchmarks/tiny_dag.py (job_times.fixed_costs): the job (by the log its stderr goes to) and how long
    its main() ran; the rest of the job's wall time is start-up and teardown."""
    import json
    import os
    import sys

    path = os.environ.get(TIMINGS_ENV)
    if not path:
        return
    try:
        log = os.readlink("/proc/self/fd/2")
    except OSError:
        log = None
    spec = getattr(sys.modules.get(main.__module__), "__spec__", None)  # run as __main__: its real name
    line = (
        json.dumps({"module": spec.name if spec else main.__module__, "log": log, "main_seconds": round(seconds, 3)})
        + "\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # one write: lines never interleave
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def main_guard(main):
    """Wrap a CLI `main` so a ScaleDAGError becomes one stderr line and its exit code (2 for bad
    input), and an OSError (full disk, permissions) one line naming the path and exit 74."""
    import functools
    import sys
    import time

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            result = main(*args, **kwargs)
            _record_timing(main, time.perf_counter() - t0)
            return result
        except ScaleDAGError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
            raise SystemExit(EXIT_IO) from None

    return wrapped


def json_option(flag: str, text: str, required: tuple[str, ...] = ()):
    """A JSON value that a rule passes on the command line (run lists, budgets, specs), or a one-line
    error naming the flag; `required` keys of a JSON object must be there."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScaleDAGError(f"{flag}: not JSON ({exc})") from None
    for key in required:
        if key not in value:
            raise ScaleDAGError(f"{flag}: missing key {key!r}")
    return value
