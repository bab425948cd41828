"""Render the VCL: static, the same for 10 cacheable routes or 10,000."""

from __future__ import annotations

from breakwater.render.templates import DEFAULT_VCL_TEMPLATE, _template
from breakwater.targets.settings import VarnishSettings


def render_vcl(
    settings: VarnishSettings, header: str = "Rendered by Breakwater; edits are overwritten."
) -> str:
    """The VCL: the same for 10 cacheable routes or 10,000 (policy comes in headers)."""
    return _template(settings.template, DEFAULT_VCL_TEMPLATE).render(
        settings=settings, header=header
    )
