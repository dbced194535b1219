"""Every check the program makes before it registers anything, in one place, so that the Pulumi
program and `python -m swarm plan` cannot disagree about what `preview` or `up` will refuse.

From a validated configuration:
1. the stack file (and its model catalogue) is loaded and validated;
2. its `x-ingress` routes are checked against `swarm:ingress`, and the proxy is added to it
   (swarm/ingress/routes.py); `swarm:images` and `swarm:bindMounts` may only name services and paths of the stack file,
   and the rollout (where each service may be placed, which folders to prepare) is computed;
3. the capacity check places every task on the declared nodes;
4. external secrets and configs are matched with their values in the stack configuration. One
   without a value is not a reason to stop a preview (nothing is created), but `up` refuses it:
   it is reported apart, as "needs a value before up".

All in one pass (`check`): a configuration with problems is checked as far as it could be read
(ConfigError.partial), a stack file with problems likewise (StackFileError.partial); a check
that reads a key or file with a problem is skipped, and every problem found is raised in one
error (a newcomer's six mistakes in one run, not three).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from swarm.backups import DatabaseBackup, check_backups
from swarm.capacity import CapacityReport, check_capacity
from swarm.compose import StackSpec, load_stack
from swarm.config import ClusterConfig, ConfigError
from swarm.diagnostics import FilesInvalid, NothingDeployed, Problem, StackFileError, config_warning, display_path
from swarm.ingress import IngressPlan, plan_ingress
from swarm.plan.duration import deploy_problems
from swarm.plan.rollout import Rollout, plan_rollout
from swarm.suggest import close_matches
from swarm.values import moving_tag

# What a preview shows for a value that is still missing (a preview creates nothing).
PLACEHOLDER = "(needs a value before up)"


@dataclass(frozen=True)
class MissingValue:
    section: str  # secrets | configs
    name: str
    hint: str = ""  # "; did you mean swarm:secrets.X?" when a similar name is set

    @property
    def key(self) -> str:
        return f"swarm:{self.section}.{self.name}"

    @property
    def secret(self) -> bool:
        return self.section == "secrets"

    @property
    def command(self) -> str:
        return f"pulumi config set{' --secret' if self.secret else ''} --path '{self.key}' VALUE"

    def __str__(self) -> str:
        return f"{self.key} needs a value before up: `{self.command}`{self.hint}"


@dataclass(frozen=True)
class Preflight:
    config: ClusterConfig
    rollout: Rollout  # its .stack is the stack file with swarm:images applied
    capacity: CapacityReport
    missing_values: tuple[MissingValue, ...]  # external secrets/configs with no value yet
    ingress: IngressPlan | None = None  # routes, DNS records and the proxy, when swarm:ingress is set
    databases: tuple[DatabaseBackup, ...] = ()  # what swarm:backups backs up
    backup_warnings: tuple[Problem, ...] = ()

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The config's and the stack file's warnings, then the capacity check's."""
        return (*self.config.warnings, *self.rollout.stack.warnings, *self.capacity.warnings, *self.backup_warnings)

    @property
    def database_volume_gb(self) -> dict[str, int]:
        """Backed-up database service -> size of the block-storage volume its data lives on."""
        volumes = {pool.volume.mount_path: pool.volume.size_gb for pool in self.config.pools if pool.volume}
        sizes = {}
        for database in self.databases:
            for mount in self.rollout.stack.services[database.service].mounts:
                for path, size in volumes.items():
                    if mount.type == "bind" and (mount.source == path or mount.source.startswith(path + "/")):
                        sizes[database.service] = size
        return sizes

    def placeholders(self, section: str) -> dict[str, str]:
        """name -> PLACEHOLDER for the missing values of `section`, for a preview to show."""
        return {m.name: PLACEHOLDER for m in self.missing_values if m.section == section}

    def missing_values_text(self) -> str:
        """Why `up` refuses to start while values are missing."""
        lines = "\n".join(f"  - {missing}" for missing in self.missing_values)
        return (
            f"Pulumi.{self.config.stack}.yaml: {len(self.missing_values)} external secret(s) or config(s) of "
            f"{self.config.stack_file.name} have no value; nothing was deployed:\n{lines}\n"
            f"(`scripts/pulumi-local up {self.config.stack}` generates a random value for each missing secret; "
            "a plain `pulumi up` never does)"
        )


def preflight(config: ClusterConfig) -> Preflight:
    """Run every check that precedes registration on a valid configuration. Raises a
    NothingDeployed error (StackFileError, ConfigError, or FilesInvalid for both) listing every
    problem of the stack file, its catalogue and the cross-checks at once; unschedulable
    services and missing values are in the result, for the caller to refuse."""
    return _checked(config, ())


def check(read_config: Callable[[], ClusterConfig]) -> Preflight:
    """`read_config()`, then preflight, in one pass: when the configuration has problems, the
    stack file and the cross-checks the problems do not concern still run on what could be read,
    and every problem is raised together (a newcomer sees all their mistakes in one run)."""
    try:
        config = read_config()
    except ConfigError as error:
        if not isinstance(error.partial, ClusterConfig):
            raise  # the file itself could not be read
        return _checked(error.partial, tuple(error.problems))
    return _checked(config, ())


# Checks that read a key are skipped when that key has a problem: on its defaults, they would
# only report the same mistake again, in other words.
_NEEDS = {
    "stack file": ("swarm:stackFile",),
    "ingress": ("swarm:ingress", "swarm:nodePools"),
    "rollout": ("swarm:images", "swarm:bindMounts", "swarm:nodePools"),
    "backups": ("swarm:backups", "swarm:nodePools"),
    "capacity": ("swarm:nodePools", "swarm:ingress", "swarm:images"),
}


def _checked(config: ClusterConfig, config_problems: tuple[Problem, ...]) -> Preflight:
    broken = {str(problem.path[0]) for problem in config_problems if problem.path}
    runs = {name: not broken.intersection(keys) for name, keys in _NEEDS.items()}
    config_found: list[Problem] = list(config_problems)
    stack_found: list[Problem] = []

    def collect(error: NothingDeployed) -> None:
        (config_found if isinstance(error, ConfigError) else stack_found).extend(error.problems)

    stack = None
    if runs["stack file"]:
        # Values are checked below, apart: a missing one must not hide the stack file's other problems.
        try:
            stack = load_stack(config.stack_file, stack=config.stack)
        except StackFileError as error:
            collect(error)
            stack = error.partial if isinstance(error.partial, StackSpec) else None
            runs["capacity"] = False  # placing services that are not what they will be says nothing
    if stack is None:
        raise _error(config, config_found, stack_found)
    ingress = None
    if runs["ingress"]:
        try:
            # x-ingress routes checked against swarm:ingress; the proxy added to the stack as a service.
            stack, ingress = plan_ingress(config, stack)
        except NothingDeployed as error:
            collect(error)
            runs["capacity"] = False  # without the proxy, the placement would not be the one deployed
    rollout = Rollout(stack, {}, {})
    if runs["rollout"]:
        try:
            rollout = plan_rollout(config, stack)
        except NothingDeployed as error:
            collect(error)
    databases, backup_warnings = [], []
    if config.backups is not None and runs["backups"]:
        managers = sum(1 for node in config.nodes if node.role == "manager")
        databases, problems, backup_warnings = check_backups(config.backups, rollout.stack, managers, config.stack_file.name)
        config_found += problems
    if not broken.intersection(("swarm:nodePools", "swarm:convergeTimeout")):
        config_found += deploy_problems(config)
    capacity = (check_capacity(config, rollout.stack, backed_up={db.service for db in databases})
                if runs["capacity"] else None)
    if config_found or stack_found:
        if capacity is not None:  # what would not fit, beside the other mistakes
            source = display_path(config.stack_file)
            stack_found += [Problem(source, ("services", s.service), s.failure.removeprefix(f"{s.service}: "), service=s.service)
                            for s in capacity.services if s.failure]
        raise _error(config, config_found, stack_found)
    assert capacity is not None
    # swarm:images overrides are warned about like the stack file's images.
    image_warnings = [config_warning(("swarm:images", key), why) for key, image in config.images.items()
                      if (why := moving_tag(image))]
    return Preflight(config, rollout, capacity, tuple(_missing_values(config, stack)), ingress,
                     tuple(databases), tuple(map(config.place, [*image_warnings, *backup_warnings])))


def _error(config: ClusterConfig, config_found: list[Problem], stack_found: list[Problem]) -> NothingDeployed:
    """One error naming every problem; of the kind of its problems' files when they are all in one."""
    source = f"Pulumi.{config.stack}.yaml"
    config_found = [config.place(problem) for problem in config_found]
    if not stack_found:
        return ConfigError(source, config_found)
    if not config_found:
        return StackFileError(stack_found)
    return FilesInvalid([*config_found, *stack_found], [source, display_path(config.stack_file)])


def _missing_values(config: ClusterConfig, stack: StackSpec) -> list[MissingValue]:
    missing = []
    if config.secret_names is not None:  # None: one encrypted blob, names unknown offline
        missing += [
            MissingValue("secrets", key, _set_instead("secrets", key, config.secret_names))
            for key, secret in stack.secrets.items()
            if secret.external and key not in config.secret_names
        ]
    missing += [
        MissingValue("configs", key, _set_instead("configs", key, config.configs))
        for key, item in stack.configs.items()
        if item.external and key not in config.configs
    ]
    return missing


def _set_instead(section: str, name: str, names: Iterable[str]) -> str:
    """A value set under a name that looks like a typo of `name`."""
    matches = close_matches(name, [n for n in names if n != name], limit=1)
    return f"; swarm:{section}.{matches[0]} is set: did you mean swarm:{section}.{name}?" if matches else ""
