#!/bin/sh
# Print the scheduled jobs' status as JSON. See swarm.backups.scripts.status_script.
# inputs: DIR RUN_AT
set -eu
# RUN_AT, the time of this `pulumi up`, is only here so that every up runs the script again and
# reports the current last backup.
: "$RUN_AT"
python3 "$DIR/lib/swarm_jobs.py" --dir "$DIR" status
