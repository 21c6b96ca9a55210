"""Certificates from an ACME CA (RFC 8555), ordered by the cluster itself."""
