"""`python -m streamspace <command>`: the operational commands.

  migrate [--bootstrap]   apply database migrations (under an advisory lock), store INGRESS_CLASS and
                          INGRESS_DOMAIN as their settings unless an admin changed them; with
                          --bootstrap, then create the first admin if there are no users (the migration Job)
  run                     run the whole system locally (see streamspace.local.runner)
  bootstrap               create the first admin user if there are no users
  openapi [--write]       print (or write into the package) the OpenAPI document
  version                 print the build version
  precompile              compile the portal's templates ahead of time (the images' build runs it after
                          compileall, so a portal's first page loads compiled templates)
  convert-template PATH   convert Template manifests of the earlier StreamSpace to stream.space/v1alpha1
  convert-session PATH    the same for Session manifests (files, folders or -; a report per file)
  backup                  run one backup of the database and the cluster to the object store (docs/s3.md)
  backups                 list the complete backups in the object store
  restore KEY [--database-url URL] [--force] [--sha256 HEX] [--no-cluster]
                          verify and restore a backup into an empty database, re-apply its Templates and Sessions
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else "help"
    if command in ("version", "--version"):
        from streamspace.buildinfo import build_info

        print(build_info().banner())
        return 0
    if command == "migrate":
        from streamspace.config import environment
        from streamspace.db import database_url
        from streamspace.db.migrate import current_version, migrate
        from streamspace.observability import configure_logging

        configure_logging(environment().log_level)
        url = database_url()
        applied = migrate(url)
        print(f"migrations applied: {applied or 'none'}; schema version {current_version(url)}")
        from streamspace.settings.service import apply_install_settings

        stored = apply_install_settings()
        if stored:
            print(f"install settings stored: {', '.join(stored)}")
        if "--bootstrap" in args:
            from streamspace.auth.bootstrap import bootstrap_admin

            bootstrap_admin(announce=print)
        return 0
    if command == "bootstrap":
        from streamspace.auth.bootstrap import bootstrap_admin

        bootstrap_admin(announce=print)
        return 0
    if command == "openapi":
        from streamspace.functions import http_apis
        from streamspace.http.openapi import build_document, render

        text = render(build_document(http_apis()))
        if "--write" in args:
            from pathlib import Path

            target = Path(__file__).with_name("openapi.json")
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
        else:
            sys.stdout.write(text)
        return 0
    if command == "precompile":
        from streamspace.portal.web import TEMPLATE_CACHE_DIR, precompile_templates

        print(f"compiled {len(precompile_templates())} portal templates into {TEMPLATE_CACHE_DIR}")
        return 0
    if command == "run":
        from streamspace.local.runner import main as run_main

        return run_main(args)
    if command in ("convert-template", "convert-session"):
        from streamspace.domain.convert_cli import main as convert_main

        return convert_main(args, command=command)
    if command in ("backup", "backups", "restore"):
        from streamspace.backups.cli import main as backup_main

        return backup_main(command, args)
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    raise SystemExit(main())
