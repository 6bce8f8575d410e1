"""Built-in components and their contracts; heavy libraries are imported inside `run`."""
