"""What runs on the nodes: the shell scripts of the program's remote commands (`<name>.sh` here, kept
as real files shellcheck reads) and the first-boot user data, rendered from typed inputs.

One renderer (`template`: `render`, `inputs_of`, ...) and one module per concern, named after the
component that runs its scripts: `swarm_cluster` (ready, init, join, settings, handover, converge,
folders), `day2` (retire, volume mount, daemon drain and return), `node_config` (operators' SSH
keys, Docker's daemon settings), `cloudinit` (the user data). The scheduler's scripts are the
backups package's (swarm/backups/).
"""

from swarm.node_scripts.cloudinit import HostKey, render_cloud_init, volume_device, volume_name
from swarm.node_scripts.day2 import (
    MANAGERS_SLOT,
    RETIRE_TIMEOUT_SECONDS,
    daemon_drain_script,
    daemon_return_script,
    mount_volume_script,
    retire_script,
    slot_group,
)
from swarm.node_scripts.node_config import authorized_keys_script, daemon_label, daemon_script
from swarm.node_scripts.swarm_cluster import (
    READY_TIMEOUT_SECONDS,
    ConvergeTarget,
    converge_script,
    handover_script,
    init_script,
    join_script,
    join_tokens_script,
    keep_swarm_state_script,
    manager_probe_script,
    node_settings_script,
    prepare_folders_script,
    swarm_state_dir,
    wait_ready_script,
)
from swarm.node_scripts.template import inputs_of, names, path, render, source, uses

__all__ = [
    "ConvergeTarget",
    "HostKey",
    "MANAGERS_SLOT",
    "READY_TIMEOUT_SECONDS",
    "RETIRE_TIMEOUT_SECONDS",
    "authorized_keys_script",
    "converge_script",
    "daemon_drain_script",
    "daemon_label",
    "daemon_return_script",
    "daemon_script",
    "handover_script",
    "init_script",
    "inputs_of",
    "join_script",
    "join_tokens_script",
    "keep_swarm_state_script",
    "manager_probe_script",
    "mount_volume_script",
    "names",
    "node_settings_script",
    "path",
    "prepare_folders_script",
    "render",
    "render_cloud_init",
    "retire_script",
    "slot_group",
    "source",
    "swarm_state_dir",
    "uses",
    "volume_device",
    "volume_name",
    "wait_ready_script",
]
