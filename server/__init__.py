"""CCL Lead Platform gRPC server."""
