"""Transcoded mounts: exactly one Liquidsoap per transcoded mount in the cluster."""
