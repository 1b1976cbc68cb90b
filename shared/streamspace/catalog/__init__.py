"""The template catalog: repositories of Template manifests, their sync, browsing and install.

- `urls`: which repository URLs are accepted (SSRF rules) and their normalised form.
- `secrets`: repository credentials, encrypted at rest (Fernet).
- `parse`: a checkout -> Template manifests plus per-file errors, with hard limits.
- `git`: a shallow fetch of one branch with the git CLI, credentials per repository.
- `repositories`: the admin's repository records and sync requests.
- `sync`: leases and the sync of due repositories (the catalog-sync function's library).
- `browse`: listing, searching and installing catalog templates.
- `webhook`: signed push notifications -> sync requests.

Modules are imported by their users directly (no re-exports): each function pays only for what it uses.
"""
