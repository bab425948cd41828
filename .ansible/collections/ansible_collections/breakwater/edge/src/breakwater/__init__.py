"""Breakwater: the Kubernetes cluster's HTTP(S) edge, driven from the cluster's own etcd."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The installed distribution's version, which setup.py took from galaxy.yml.
    __version__ = version("breakwater")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
