"""The inference server: the registry's model behind HTTP, its router, metrics and log."""
