"""Print the backup and restore figures of the restore drill on the local sandbox (root only).

A real PostgreSQL 15 (Debian's) as the swarm service prod_database, moto's S3 server on the
sandbox bridge, the scheduler installed by the program's own install script. Writes `--rows`
rows (about 250 bytes each), takes a backup through the scheduler (pg_dump -Fc | openssl |
multipart upload | verification), destroys the database, restores it with
`python -m swarm restore`, checks the rows, then backs up the swarm state and restores it onto
a blank manager. Prints: database size, backup size, backup time and time per GiB of database,
restore time, Docker's downtime during the swarm-state backup, swarm restore time.

    sudo flock /run/swarm-sandbox-suite.lock python scripts/bench_backups.py --rows 2000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 1024**3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to write (default 1000000, about 300 MB)")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/swarm-sandbox/bench-backups"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("the sandbox needs root")

    import yaml

    from swarm.backups import restore
    from tests.sandbox import backup_drill as drill
    from tests.sandbox.harness import Sandbox

    repo = Path(__file__).resolve().parents[1]
    with Sandbox(args.workdir, subnet="10.233.117.0/24", prefix="bkbench") as sandbox, \
            tempfile.TemporaryDirectory() as project:
        manager, blank = drill.sandbox_hosts(sandbox)
        server = drill.S3Server(sandbox.gateway)
        try:
            server.client().create_bucket()
            drill.start_database(manager)
            backups = drill.backups_config()
            drill.install(manager, server, drill.backups_config(swarm_state=False))
            started = time.monotonic()
            drill.write_rows(manager, args.rows)
            print(f"rows written:         {args.rows:,} in {time.monotonic() - started:.1f} s")
            size = drill.database_bytes(manager)
            written = drill.fingerprint(manager)
            run = drill.backup_through_scheduler(manager, "backup-database", "2026-12-03T03:00:00Z")
            assert run["status"] == "succeeded", run
            print(f"database size:        {size / 1e6:,.1f} MB (pg_database_size)")
            print(f"backup size:          {run['size'] / 1e6:,.1f} MB encrypted ({run['size'] / size:.2f} of the database)")
            print(f"backup time:          {run['seconds']:.1f} s = {run['seconds'] / (size / GIB):.1f} s per GiB of database "
                  "(pg_dump -Fc -Z 6 | openssl | upload | verify)")

            shutil.copytree(repo / "stacks", Path(project) / "stacks")
            (Path(project) / "Pulumi.yaml").write_text((repo / "Pulumi.yaml").read_text())
            document = yaml.safe_load((repo / "Pulumi.prod.yaml").read_text())
            document["config"]["swarm:backups"] = {"bucket": drill.BUCKET, "keep": 3}
            (Path(project) / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))

            drill.destroy_database(manager)
            options = argparse.Namespace(stack="prod", database="database", at=None, dry_run=False, yes=True,
                                         host=manager.ip, identity=str(sandbox.key_path), jobs_dir=drill.JOBS_DIR)
            started = time.monotonic()
            restore.restore(options, Path(project), say=lambda _: None)
            seconds = time.monotonic() - started
            assert drill.fingerprint(manager) == written, "restored rows differ"
            print(f"restore time:         {seconds:.1f} s = {seconds / (size / GIB):.1f} s per GiB "
                  "(download, verify, decrypt, pg_restore --single-transaction); rows identical")

            drill.install(manager, server, backups, databases=())
            raft = drill.backup_through_scheduler(manager, "backup-swarm-state", "2026-12-04T03:00:00Z")
            assert raft["status"] == "succeeded", raft
            print(f"swarm-state backup:   {raft['size'] / 1e3:,.1f} kB in {raft['seconds']:.1f} s; "
                  f"Docker stopped on the manager for {raft['dockerStoppedSeconds']:.1f} s")
            manager.stop_dockerd()
            swarm_seconds = drill.restore_swarm_onto(blank, server, backups)
            print(f"swarm restore:        {swarm_seconds:.1f} s (stop Docker, restore, start, init --force-new-cluster)")
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
