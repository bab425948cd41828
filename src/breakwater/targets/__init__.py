"""What the edge configures: HAProxy (:mod:`.haproxy`, its control sockets in
:mod:`.haproxy_api`) and Varnish (:mod:`.varnish`), with staging shared by both
(:mod:`.staging`)."""
