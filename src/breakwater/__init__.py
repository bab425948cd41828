"""Breakwater: the Kubernetes cluster's HTTP(S) edge, driven from the cluster's own etcd."""

__version__ = "0.1.0"
