#!/bin/sh
# Install the scheduler and its jobs document in DIR on a manager; the keys arrive on stdin, a
# JSON object, and go to files only root reads. Installing again replaces the files and keeps
# the state (last runs, missed runs). See swarm.backups.scripts.install_script.
# SWARM_JOBS_PY, CLAIMS_PY, JOBS_HOST_PY, JOBS_RESTORE_PY, S3_PY, SCHEDULE_PY, SUGGEST_PY: the
# scheduler's modules (swarm.backups.scripts.NODE_FILES).
# CRON_ENTRY: the cron line that ticks it every minute; empty for none.
# DROPLET: the droplet this install is for. Nothing reads it here: a successor droplet (a new
# ID) changes the script, so that `up` installs the scheduler on it again.
# inputs: DIR JOBS_JSON SWARM_JOBS_PY CLAIMS_PY JOBS_HOST_PY JOBS_RESTORE_PY S3_PY SCHEDULE_PY SUGGEST_PY CRON_FILE CRON_ENTRY DROPLET
set -eu
: "$DROPLET"
umask 077
mkdir -p "$DIR/lib" "$DIR/locks"
printf '%s' "$SWARM_JOBS_PY" >"$DIR/lib/swarm_jobs.py"
printf '%s' "$CLAIMS_PY" >"$DIR/lib/claims.py"
printf '%s' "$JOBS_HOST_PY" >"$DIR/lib/jobs_host.py"
printf '%s' "$JOBS_RESTORE_PY" >"$DIR/lib/jobs_restore.py"
printf '%s' "$S3_PY" >"$DIR/lib/s3.py"
printf '%s' "$SCHEDULE_PY" >"$DIR/lib/schedule.py"
printf '%s' "$SUGGEST_PY" >"$DIR/lib/suggest.py"
printf '%s\n' "$JOBS_JSON" >"$DIR/jobs.json"
# The keys: from stdin to files only root can read, split by python3 (no key in argv).
python3 -c '
import json, sys
d = sys.argv[1]
keys = json.load(sys.stdin)
open(d + "/secrets.json", "w").write(json.dumps({k: keys.get(k) for k in ("accessKeyId", "secretAccessKey")}))
open(d + "/backup.key", "w").write(keys.get("encryptionKey", "") + "\n")' "$DIR"
chmod 0600 "$DIR/secrets.json" "$DIR/backup.key"
python3 "$DIR/lib/swarm_jobs.py" --dir "$DIR" status >/dev/null
if [ -n "$CRON_ENTRY" ]; then
  printf '%s\n' '# Installed by the swarm program (Pulumi): scheduled jobs and backups.' "$CRON_ENTRY" >"$CRON_FILE.tmp"
  chmod 0644 "$CRON_FILE.tmp" && mv "$CRON_FILE.tmp" "$CRON_FILE"
fi
echo "scheduler installed in $DIR"
