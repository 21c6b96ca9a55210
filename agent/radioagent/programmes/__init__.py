"""Programmes: a public mount fed by an ordered list of input mounts, falling back on
loss and on silence."""
