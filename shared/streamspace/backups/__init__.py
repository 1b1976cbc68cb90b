"""Backups of the database and the cluster to the object store, and restore (docs/s3.md)."""
