"""Shared plumbing every room may use and that imports no room: the settings schema
(settings.py), the registry behind every extension point (registry.py), content identities and
run fingerprints (identity.py), atomic writes and one-line write errors (files.py), the durable
append-only log (durable_log.py) and exclusive locks (locks.py)."""
