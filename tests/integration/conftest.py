import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/builders.py

from harness import backends, edge, etcd, haproxy, watcher  # noqa: F401 - fixtures
