"""Stands in for `grpc` when `make lint` runs the unit tier: importing it fails, so a unit
test (or what it imports) that reaches for etcd fails loudly instead of passing here and
breaking on a machine without the package."""

raise ImportError("the unit tier must not import grpc (it is hermetic: no etcd, no grpc)")
