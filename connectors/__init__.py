"""Platform layer of Connector Hub: pure Python, imports nothing from ``dashboard``."""
