"""Holding mounts: every mount's local fallback, fed with silence in the mount's format so
listeners stay connected while a relay or source is away."""
