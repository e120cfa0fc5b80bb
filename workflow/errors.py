"""One exception type for bad input, so every entry point can print it on one line and exit 2."""


class ScaleDAGError(Exception):
    """Bad input or configuration; the message names what is wrong and where, on one line."""


def main_guard(main):
    """Wrap a CLI `main` so a ScaleDAGError becomes one stderr line and exit code 2."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except ScaleDAGError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2)

    return wrapped


def json_option(flag: str, text: str):
    """A JSON value that a rule passes on the command line (run lists, budgets), or a one-line error naming the flag."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScaleDAGError(f"{flag}: not JSON ({exc})") from None
