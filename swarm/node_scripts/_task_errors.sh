#!/bin/sh
# Fragment (see __init__.py): for scripts that report why a service's tasks do not run.
set -eu

# task_errors [OPTION...] SERVICE: up to three distinct errors of the service's tasks (`docker
# service ps` options select them), each on a line "    task error: ...". Docker quotes each
# task's error, and prints "" for a task without one.
task_errors() {
  docker service ps --no-trunc --format '{{.Error}}' "$@" </dev/null |
    sed 's/^"\(.*\)"$/\1/' | awk 'NF && !seen[$0]++' | head -n 3 | sed 's/^/    task error: /'
}
