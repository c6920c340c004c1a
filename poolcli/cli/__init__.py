"""The command line: the Typer app and its commands (``commands``), its options declared once (``options``), the
command bodies (``processing``, ``queries``), the streams (``environment``) and the start-up
shortcuts of poolcli's own process (``startup``).

``main`` is the console script; ``python -m poolcli`` runs it too.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run the command ``argv`` names (default: the process's arguments).

    This is poolcli's own process: it sets its process-wide settings first
    (``startup.configure_process``). Run as the process itself (``argv`` None) it ends without
    the interpreter's teardown (``startup.exit_now``); called with ``argv`` it raises SystemExit
    with the status.
    """
    import typer

    from .commands import app
    from .startup import app_for, configure_process, exit_now

    args = sys.argv[1:] if argv is None else argv
    configure_process(args)
    try:
        status = typer.main.get_command(app_for(app, args)).main(args=args, prog_name="poolcli", standalone_mode=False)
    except SystemExit as exc:
        if argv is not None or not isinstance(exc.code, (int, type(None))):
            raise
        status = exc.code or 0
    if argv is not None:
        raise SystemExit(status)
    exit_now(int(status or 0))


def __getattr__(name: str):
    """``poolcli.cli.app``: the Typer app, imported on first use."""
    if name == "app":
        from .commands import app

        return app
    raise AttributeError(f"module 'poolcli.cli' has no attribute {name!r}")
