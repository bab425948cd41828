"""Render the routing model: HAProxy's files (:mod:`.haproxy`), its server slots
(:mod:`.slots`), the VCL (:mod:`.vcl`), the renderer's exit check (:mod:`.screen`)."""
