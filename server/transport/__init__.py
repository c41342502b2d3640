"""Transport: gRPC server bootstrap, interceptors, servicers and proto <-> domain converters."""
