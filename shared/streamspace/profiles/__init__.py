"""Persistent profiles: users' homes saved as archives in the object store (HOME_STORAGE=s3, docs/s3.md)."""
