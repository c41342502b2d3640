"""Test support: database backends, a server on its own thread, Envoy, gRPC helpers."""
