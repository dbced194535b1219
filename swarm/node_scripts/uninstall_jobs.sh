#!/bin/sh
# Stop scheduling: the cron entry goes; DIR, with the state and keys, stays so that backups in
# the bucket can still be restored from this manager. See swarm.backups.scripts.uninstall_script.
# inputs: DIR CRON_FILE
set -eu
rm -f "$CRON_FILE"
echo "scheduler stopped; $DIR kept"
