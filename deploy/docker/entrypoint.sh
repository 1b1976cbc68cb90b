#!/bin/sh
# Image entry point.
#   (no arguments)   FUNCTION=<name>: functions-framework serving functions/<name>/main.py on $PORT
#                    FUNCTION=all:    the whole local system (python -m streamspace run)
#   --version, -...  passed to functions/<name>/main.py (prints the build line)
#   anything else    executed as is (e.g. python -m streamspace migrate)
set -eu
if [ "$#" -gt 0 ]; then
  case "$1" in
    -*)
      if [ "${FUNCTION}" = "all" ]; then exec python -m streamspace "$@"; fi
      exec python "functions/${FUNCTION}/main.py" "$@"
      ;;
    *) exec "$@" ;;
  esac
fi
if [ "${FUNCTION}" = "all" ]; then
  exec python -m streamspace run
fi
exec functions-framework --source "functions/${FUNCTION}/main.py" --target handle \
  --host 0.0.0.0 --port "${PORT:-8080}"
