"""One exception type for bad input, so every entry point can print it on one line and exit 2."""

EXIT_IO = 74  # EX_IOERR: an output or checkpoint could not be written (full disk, permissions)


class ScaleDAGError(Exception):
    """Bad input or configuration; the message names what is wrong and where, on one line."""

    exit_code = 2


def main_guard(main):
    """Wrap a CLI `main` so a ScaleDAGError becomes one stderr line and its exit code (2 for bad
    input), and an OSError (full disk, permissions) one line naming the path and exit 74."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
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
