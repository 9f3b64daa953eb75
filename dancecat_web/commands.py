"""``dancecat serve``: the web app under waitress, plus the queue consumer in embedded mode.

Embedded mode (no ``REDIS_URL`` and ``EMBEDDED_WORKER`` true) is the one-process install:
runs execute on consumer threads inside the web server. With Redis, run consumers
separately and this process only serves. ``--processes N`` (N > 1) forks N web processes
on one socket (``processes``); the embedded consumer, if any, then runs in one more
process of its own, so it runs once however many web processes there are.
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
THREADS = 8


def declare(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=6543, help="port to listen on")
    # 8, not waitress's 4: a request that waits (a connection test on a silent host, a slow
    # client's download) holds its thread, and eight of them must leave the app answering
    # (tests/test_timeouts.py). They do not share the interpreter lock among quick
    # requests: those run one at a time, in the order they came (``turns``).
    serve.add_argument(
        "--threads", type=int, default=THREADS, help="request threads per process (default 8)"
    )
    serve.add_argument(
        "--processes",
        type=_count,
        default=None,
        help="web processes sharing the port (default: the number of cores with "
        "REDIS_URL, 1 without)",
    )
    serve.set_defaults(handler=serve_command)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, not {text!r}")
    return value


def _pyramid_settings(config_file: str | None) -> dict[str, Any]:
    """The INI's ``[app:main]`` as Pyramid settings (jinja2, pyramid.*), when one is given."""
    if not config_file:
        return {}
    from pyramid.paster import get_appsettings

    return dict(get_appsettings(config_file))


def proxy_options(trusted_proxy: str | None) -> dict[str, Any]:
    """waitress's options for ``TRUSTED_PROXY``: the scheme, host and client address that
    proxy forwards are taken as the request's; the same headers from anyone else are
    dropped before the app sees them."""
    if not trusted_proxy:
        return {}
    return {
        "trusted_proxy": trusted_proxy,
        "trusted_proxy_count": 1,
        "trusted_proxy_headers": {"x-forwarded-proto", "x-forwarded-host", "x-forwarded-for"},
        "clear_untrusted_proxy_headers": True,
    }


def serve_command(args: argparse.Namespace) -> int:
    import waitress

    from dancecat_web import handoff, processes
    from dancecat_web.config import configure
    from dancecat_web.limits import server_body_limit
    from dancecat_web.turns import in_turn

    runtime = runtime_for(args)
    settings = runtime.settings
    count = args.processes or processes.default_count(settings.redis_url)
    app = in_turn(configure(_pyramid_settings(args.config), runtime=runtime).make_wsgi_app())
    consumer = settings.embedded and settings.embedded_worker
    options: dict[str, Any] = {
        "threads": args.threads,
        # Waitress answers bodies past this itself, in plain text: well past the app's cap,
        # so that the app's JSON 413 answers a body that is merely too big.
        "max_request_body_size": server_body_limit(settings.max_body_bytes),
        "ident": "dancecat",
        **proxy_options(settings.trusted_proxy),
    }
    if count > 1:
        try:
            sock = processes.listening_socket(args.host, args.port)
        except OSError as exc:
            print(
                f"dancecat serve: cannot listen on {args.host}:{args.port}: {exc.strerror}",
                file=sys.stderr,
            )
            return 1
        # The parent's pooled app-database connections must not be shared with children;
        # the parent uses none after this.
        runtime.engine.dispose()

        family, name = sock.family, sock.getsockname()[:2]

        def web(seat: handoff.Seat) -> None:
            server = handoff.HandedServer(app, seat, family, name, **options)
            try:
                server.run()
            finally:
                server.close()

        def worker() -> None:
            stop = tasks.start_embedded_consumer()
            try:
                signal.pause()
            finally:
                stop()

        children = {"embedded worker": worker} if consumer else {}
        print(
            f"serving on http://{args.host}:{sock.getsockname()[1]} with {count} processes"
            + (" and an embedded worker process" if consumer else ""),
            flush=True,
        )
        processes.supervise(children, processes.WebTier(sock, count, web))
        sock.close()
        print("stopped", file=sys.stderr, flush=True)
        return 0

    server = waitress.create_server(app, host=args.host, port=args.port, **options)
    stop_consumer: Callable[[], None] | None = None
    if consumer:
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
