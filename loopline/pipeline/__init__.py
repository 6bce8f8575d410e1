"""A spec loaded against the component registry, its checks, and what is generated from both
(the JSON Schema, the components reference)."""
