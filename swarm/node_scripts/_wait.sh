#!/bin/sh
# Fragment (see __init__.py): for scripts that wait, bounded, for something on the node.
set -eu

# wait_until SECONDS CHECK [ARG...]: true once the command CHECK succeeds (tried every second),
# false once SECONDS have passed without.
wait_until() {
  deadline=$(( $(date +%s) + $1 ))
  shift
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
    sleep 1
  done
}
