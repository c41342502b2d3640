"""Thin servicers: unpack the request, call a domain service, convert the result."""
