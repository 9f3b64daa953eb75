"""Security headers on every response, errors included.

The CSP allows no inline script or style, so templates must load both from ``/static``.
Responses are ``no-store`` unless a view chose otherwise: results and API answers hold a
team's data and must not sit in shared caches.
"""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.events import NewResponse

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def add_security_headers(event: NewResponse) -> None:
    response = event.response
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    if event.request.registry["dancecat.runtime"].settings.secure_cookies:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def includeme(config: Configurator) -> None:
    config.add_subscriber(add_security_headers, NewResponse)
