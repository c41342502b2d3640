"""Hand-written convenience client over the generated stubs."""
