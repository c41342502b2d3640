"""Domain services: API keys, lead intake, statistics. No gRPC, no protobuf in here."""
