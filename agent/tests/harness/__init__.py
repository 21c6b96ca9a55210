"""Test harness: real etcd, Icecast and Liquidsoap on loopback, and real clients on the wire.

Everything here starts processes on free ephemeral ports of 127.0.0.1, in temporary
directories, and stops them by PID, also when a test fails.
"""
