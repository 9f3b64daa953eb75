"""The run queue as the web app sees it: ``registry["dancecat.enqueue_run"]``.

Views call the function in the registry rather than importing ``enqueue_run`` so tests can
watch what is enqueued and when. The queue itself (``dancecat_core.tasks``) is pointed at
this process's runtime, so the web app and its embedded consumer share one configuration.
"""

from __future__ import annotations

from pyramid.config import Configurator

from dancecat_core import tasks


def includeme(config: Configurator) -> None:
    runtime = config.registry["dancecat.runtime"]
    if "dancecat.enqueue_run" not in config.registry:
        tasks.configure(runtime=runtime)
        config.registry["dancecat.enqueue_run"] = tasks.enqueue_run
