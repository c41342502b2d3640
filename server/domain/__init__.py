"""Domain types shared by services, storage and the transport converters."""
