"""DanceCat's Pyramid web app: the JSON API, the browser result routes and the sign-in page.

``main`` is the paste entry point (``pserve development.ini``); ``dancecat serve`` builds the
same app through ``configure`` so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from dancecat_web.config import configure


def main(global_config: dict[str, Any] | None, **settings: Any):
    """The WSGI app for ``pserve``: ``[app:main]`` keys, then ``DANCECAT_*`` environment."""
    config_file = (global_config or {}).get("__file__")
    return configure(settings, config_file=config_file).make_wsgi_app()
