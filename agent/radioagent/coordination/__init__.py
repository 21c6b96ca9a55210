"""Coordination on etcd: the key layout, the store adapter, and leadership decisions."""
