"""The template catalog: repositories of Template manifests, their sync, browsing and install.

`store` is the only code that speaks SQL to `repositories` and `catalog_templates`; the services
`repositories`, `sync`, `browse` and `webhook` hold the rules over it and raise domain errors only;
the catalog, catalog-sync and webhooks functions are the routes on top. Below the services, without
SQL: the URL rules, credentials, parsing and git.

- `urls`: which repository URLs are accepted (SSRF rules) and their normalised form.
- `credentials`: repository credentials, encrypted at rest (Fernet).
- `parse`: a checkout -> Template manifests plus per-file errors, with hard limits.
- `git`: a shallow fetch of one branch with the git CLI, credentials per repository.
- `store`: the repositories' rows (sync state, lease) and the catalog templates' rows.
- `repositories`: the admin's repository records and sync requests.
- `sync`: leases and the sync of due repositories (the catalog-sync function's library).
- `browse`: listing, searching and installing catalog templates.
- `webhook`: signed push notifications -> sync requests.

Modules are imported by their users directly (no re-exports): each function pays only for what it uses.
"""
