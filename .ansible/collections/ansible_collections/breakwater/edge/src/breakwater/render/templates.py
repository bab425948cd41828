"""The Jinja2 templates: the default ones shipped with the package, or the operator's."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2

DEFAULT_TEMPLATE = "haproxy.cfg.j2"


DEFAULT_VCL_TEMPLATE = "varnish.vcl.j2"


@lru_cache(maxsize=8)
def _template(path: str | None, default: str = DEFAULT_TEMPLATE) -> jinja2.Template:
    if path is None:
        source = resources.files("breakwater").joinpath("templates", default).read_text()
    else:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    environment = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    return environment.from_string(source)


def clear_template_cache() -> None:
    """Forget compiled templates (SIGHUP re-reads an operator's template)."""
    _template.cache_clear()
