"""The watcher daemon: follow etcd, schedule syncs, apply them to the targets, report."""
