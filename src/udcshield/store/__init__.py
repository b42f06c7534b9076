"""Artifact storage: zarr image stores, atomic writes, hashing, provenance."""
