"""The frame every script shares: argparse, the log file, threads, and one clear line for a user's mistake.

A script builds its parser with ``parser(__doc__)``, adds its own arguments and calls ``run(main, parser)``.
With ``--log FILE`` everything the step prints (Python, Keras progress, TensorFlow's C++ messages) goes
to FILE; an error still reaches the terminal as one line ``dualgen: error: ...`` and the exit status is 1.
"""

import argparse
import json
import os
import sys
import traceback

from dualgen.core.errors import DualgenError


def parser(doc):
    first, _, rest = (doc or "").strip().partition("\n")
    p = argparse.ArgumentParser(
        description=first, epilog=rest.strip() or None, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--settings", default="{}", help="the step's settings as one JSON object (built from config by the rule)"
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads for this step (TensorFlow thread pools)")
    p.add_argument("--log", default=None, help="write all output of the step to this file")
    return p


def add_checkpoint_every(p):
    """The training steps' --checkpoint-every-s (config unet.checkpoint_every_s: not a setting; it reruns nothing)."""
    p.add_argument(
        "--checkpoint-every-s",
        type=float,
        required=True,
        help="save a resumable state at most this often (config unet.checkpoint_every_s)",
    )


def settings(args):
    """The step's settings (--settings, one JSON object), with config.yaml's defaults filled in the sections present
    (``config.fill_step_settings``), so a step run by hand with part of a section behaves as in the workflow."""
    try:
        value = json.loads(args.settings)
    except json.JSONDecodeError as err:
        raise DualgenError(f"--settings: not valid JSON ({err.msg} at character {err.pos})")
    if not isinstance(value, dict):
        raise DualgenError("--settings: expected a JSON object")
    from dualgen.core.config import fill_step_settings

    return fill_step_settings(value)


def named_paths(items, flag, what="", declared=None):
    """{NAME: PATH} (strings) of repeated ``flag NAME=PATH`` arguments; ``what`` says what a PATH is (for the error
    line). With ``declared`` (the names the settings declare), the names given must be exactly those."""
    paths = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise DualgenError(f"{flag} {item}: expected NAME=PATH" + (f" ({what})" if what else ""))
        paths[name] = path
    if declared is not None and set(paths) != set(declared):
        raise DualgenError(
            f"{flag} gives {', '.join(sorted(paths)) or 'none'} but the settings declare "
            f"{', '.join(declared) or 'none'}: give one {flag} NAME=PATH per declared name"
        )
    return paths


def _redirect(log_path):
    """Send fds 1 and 2 to the log file; return a file object on the original stderr."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    return terminal


def run(main, p, argv=None):
    args = p.parse_args(argv)
    terminal = _redirect(args.log) if args.log else sys.stderr
    try:
        main(args)
    except DualgenError as err:
        line = f"dualgen: error: {err}"
        print(line, file=sys.stderr, flush=True)
        if terminal is not sys.stderr:
            print(line, file=terminal, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("dualgen: interrupted", file=terminal, flush=True)
        sys.exit(130)
    except Exception as err:  # a bug, not a user's mistake: full traceback into the log
        traceback.print_exc()
        sys.stderr.flush()
        where = f" (traceback in {args.log})" if args.log else ""
        if terminal is not sys.stderr:
            print(f"dualgen: internal error: {type(err).__name__}: {err}{where}", file=terminal, flush=True)
        sys.exit(2)
