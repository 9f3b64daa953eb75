"""``dancecat serve``: the web app under waitress, plus the queue consumer in embedded mode.

Embedded mode (no ``REDIS_URL`` and ``EMBEDDED_WORKER`` true) is the one-process install:
runs execute on consumer threads inside the web server. With Redis, run consumers
separately and this process only serves.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from dancecat_core import tasks
from dancecat_core.commands.context import runtime_for

log = logging.getLogger(__name__)


def declare(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=6543, help="port to listen on")
    serve.add_argument("--threads", type=int, default=8, help="request threads")
    serve.set_defaults(handler=serve_command)


def _pyramid_settings(config_file: str | None) -> dict[str, Any]:
    """The INI's ``[app:main]`` as Pyramid settings (jinja2, pyramid.*), when one is given."""
    if not config_file:
        return {}
    from pyramid.paster import get_appsettings

    return dict(get_appsettings(config_file))


def serve_command(args: argparse.Namespace) -> int:
    import waitress

    from dancecat_web.config import configure

    runtime = runtime_for(args)
    settings = runtime.settings
    app = configure(_pyramid_settings(args.config), runtime=runtime).make_wsgi_app()
    server = waitress.create_server(
        app,
        host=args.host,
        port=args.port,
        threads=args.threads,
        # Waitress refuses bodies past this itself; the app's own cap answers first.
        max_request_body_size=settings.max_body_bytes + 1,
        ident="dancecat",
    )
    stop_consumer: Callable[[], None] | None = None
    if settings.embedded and settings.embedded_worker:
        stop_consumer = tasks.start_embedded_consumer()

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    print(
        f"serving on http://{args.host}:{server.effective_port}"
        + (" with an embedded worker" if stop_consumer else ""),
        flush=True,
    )
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()
        if stop_consumer is not None:
            stop_consumer()
    print("stopped", file=sys.stderr, flush=True)
    return 0
