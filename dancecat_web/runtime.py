"""The process's ``Runtime`` in the registry, and ``request.runtime`` for views."""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.request import Request

from dancecat_core.runtime import Runtime
from dancecat_core.settings import Settings


def _runtime(request: Request) -> Runtime:
    return request.registry["dancecat.runtime"]


def _dancecat_settings(request: Request) -> Settings:
    return request.registry["dancecat.runtime"].settings


def includeme(config: Configurator) -> None:
    config.add_request_method(_runtime, "runtime", reify=True)
    config.add_request_method(_dancecat_settings, "dancecat_settings", reify=True)
