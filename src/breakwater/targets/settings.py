"""The settings of each target, as the watcher's configuration holds them: what the
renderer writes into the files and what the targets use to reach the daemons."""

from __future__ import annotations

from dataclasses import dataclass

BACKEND_LOG_LEVELS = {"all": None, "errors": "err", "none": ""}
"""``backend_log``: HAProxy's highest log level sent (None: every level, "": none).
HAProxy 2.6 logs a server down or into maintenance at ``alert``, a backend without
servers at ``emerg``, a stopped proxy at ``warning`` and a server up at ``notice``."""


@dataclass(frozen=True)
class HAProxySettings:
    config_dir: str = "/etc/haproxy/breakwater"
    config_file: str = "/etc/haproxy/haproxy.cfg"
    stats_socket: str = "/run/haproxy/admin.sock"
    master_socket: str = "/run/haproxy/master.sock"
    http_binds: tuple[str, ...] = (":80",)
    https_binds: tuple[str, ...] = (":443",)
    # Health endpoint for what balances across edge nodes (DNS, VRRP, a cloud LB):
    # 200 in rotation, 503 out (breakwater.edge.edge_node). Empty: none.
    monitor_binds: tuple[str, ...] = ()
    # HAProxy's own Prometheus exporter (/metrics), on these binds. Empty: none.
    metrics_binds: tuple[str, ...] = ("127.0.0.1:8405",)
    # Cleartext binds also take HTTP/2 with prior knowledge (h2c); TLS binds always
    # offer h2 (ALPN h2,http/1.1).
    h2c: bool = False
    # Front load balancers allowed to send a PROXY protocol header (v1 or v2): CIDRs.
    # Their header gives the client's address; from anywhere else none is accepted.
    proxy_protocol_sources: tuple[str, ...] = ()
    maxconn: int = 4096  # HAProxy needs about 2 file descriptors per connection
    hard_stop_after: str = "5m"
    timeout_connect: str = "5s"
    timeout_client: str = "60s"
    timeout_server: str = "60s"
    log_target: str = "stdout"
    # What backends log to log_target (request logs come from the frontends, always):
    # "errors": servers going down or into maintenance, a backend left without
    # servers; "all": also servers coming up and one "Proxy ... stopped" line per
    # backend at each reload (10,000 lines a reload at 10,000 backends); "none".
    backend_log: str = "errors"
    user: str | None = None
    group: str | None = None
    socket_group: str | None = None  # group allowed on the stats socket (the watcher's)
    template: str | None = None  # a path: the operator's own template
    min_slots: int = 4
    # Idle backend sections kept for routes to new Services (taken without a reload):
    # at least this many, a quarter of the backends in a large cluster; 0: none.
    spare_backends: int = 64
    # After routes changed through the runtime API, the reload that gives backends
    # served by spares their own names (logs, metrics) comes once no such change came
    # for this many seconds (0: only with the next reload needed for another reason).
    # It comes sooner when fewer than a quarter of the spares are left.
    rename_after: float = 3600.0


@dataclass(frozen=True)
class VarnishSettings:
    """The Varnish tier: where HAProxy sends cacheable requests, and the way back.

    Varnish's misses return to HAProxy through ``return_socket``, a unix socket
    bound by HAProxy's internal frontend: no client can open it, so no header a
    client sends can route around the cache or into the internal frontend.
    """

    enabled: bool = False
    server: str = "127.0.0.1:6081"  # HAProxy server address of Varnish's listener
    return_socket: str = "/run/haproxy/varnish-return.sock"
    return_socket_mode: str = "660"
    return_socket_group: str | None = "varnish"
    # Varnish's own listener for HAProxy's health check (varnishd -a health=...): the
    # check never travels the public request space, so a client's /.breakwater/health
    # reaches the service like any other path.
    health: str = "127.0.0.1:6086"
    admin: str = "127.0.0.1:6082"  # varnishd -T
    secret_file: str = "/etc/varnish/secret"  # varnishd -S
    vcl_file: str = "/etc/varnish/breakwater.vcl"
    template: str | None = None  # a path: the operator's own VCL template
    keep_vcls: int = 3  # loaded VCLs kept (the active one included)
    varnishd: str = "varnishd"
    nodes: tuple[str, ...] = ()  # admin addresses of every edge's Varnish, for ban/purge
    health_interval: str = "1s"

    @property
    def health_check(self) -> str:
        """The ``server`` options that send HAProxy's check to the health listener."""
        host, port = self.health.rsplit(":", 1)
        return f"addr {host.strip('[]')} port {port}"
