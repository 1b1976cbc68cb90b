"""`python -m streamspace backup|restore|backups`: run a backup by hand, restore one, list those stored."""

from __future__ import annotations

import argparse
import json
import sys

from streamspace.backups import service
from streamspace.config import environment
from streamspace.db import database_url
from streamspace.domain.errors import DomainError
from streamspace.observability import configure_logging


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m streamspace {command}")
    if command == "restore":
        parser.description = ("Verify a backup's checksums, restore its database into an empty database and "
                              "re-apply its Templates and Sessions (docs/s3.md, disaster recovery).")
        parser.add_argument("key", help="the backup's id (20261201T020000Z-a1b2c3) or its manifest key")
        parser.add_argument("--database-url", help="the database to restore into (default: the configured one)")
        parser.add_argument("--force", action="store_true",
                            help="restore into a non-empty database, dropping the objects the backup has")
        parser.add_argument("--sha256", help="the database dump's SHA-256 as listed by GET /api/v1/admin/backups "
                                             "(checked as well as the manifest's)")
        parser.add_argument("--namespace",
                            help="re-apply the Templates and Sessions here (default: SESSIONS_NAMESPACE)")
        parser.add_argument("--no-cluster", action="store_true", help="restore the database only")
    elif command == "backup":
        parser.description = "Run one backup now (the same run as the backup function's)."
    else:
        parser.description = "List the complete backups in the object store (works without the database)."
    return parser


def main(command: str, argv: list[str]) -> int:
    args = _parser(command).parse_args(argv)
    configure_logging(environment().log_level)

    try:
        if command == "backup":
            print(json.dumps(service.run_backup("cli"), indent=2))
        elif command == "backups":
            for item in service.list_stored():
                print(f"{item['id']}  {item['lastModified']}  {item['key']}")
        else:

            sha = args.sha256.strip().lower() if args.sha256 else None
            if sha is not None and (len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha)):
                print("restore: --sha256 expects 64 hexadecimal characters", file=sys.stderr)
                return 2
            service.restore(args.key, args.database_url or database_url(), force=args.force, expected_sha256=sha,
                            namespace=args.namespace, apply_cluster=not args.no_cluster)
    except DomainError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    return 0
