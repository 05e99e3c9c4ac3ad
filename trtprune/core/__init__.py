"""Foundations every step shares: the one user-facing error, versioned records, registries, atomic writes, shape strings."""
