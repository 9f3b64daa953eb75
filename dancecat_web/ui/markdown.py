"""Job annotations as Markdown, rendered without raw HTML.

markdown-it-py's ``commonmark`` preset with ``html`` off escapes any HTML a user types, and
its link validator refuses ``javascript:`` and similar URLs, so the output is safe to mark
as such. Links open as ordinary links; nothing executes.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    return Markup(_RENDERER.render(text))
