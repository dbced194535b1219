"""Compose stack files, loaded into typed, validated, normalised service specs.

A stack file is an ordinary Compose file as used with `docker stack deploy`
(docs/stack-files.md). Values mean exactly what Docker makes of them; `docker stack config -c`
is the reference and the differential tests compare against it field by field:

- YAML is read the way Docker's parser (yaml.v3) reads it: only `true`/`false` are booleans
  (`yes`, `on` are strings), no sexagesimal numbers (an unquoted `22:22` port stays a string),
  `0440` is octal, duplicate keys are an error. Numbers used as strings (environment, labels)
  are printed as Go prints them (`1.10` becomes `1.1`, `1e6` becomes `1e+06`).
- Sizes follow go-units RAMInBytes (`10G` is 10737418240), CPUs are exact rationals turned into
  NanoCPUs, durations follow Go's time.ParseDuration, ports expand like Docker's nat package.
- Keys introduced after the file's `version` are rejected as Docker does; no version means the
  latest 3.x (3.13).

Every problem is collected before failing, each with file, path and what is expected, so an
operator fixes a stack file in one pass. Options that swarm (or the Docker provider this
program deploys with) ignores are warnings, never silence.

Deliberate differences from `docker stack deploy`, each reported clearly:
- `${VAR}` interpolation is not supported: a deployment must not depend on the shell of
  whoever runs `pulumi up`. A `$` is a problem; `$$` is a literal `$`, as in Docker. For the
  same reason an environment variable without a value (`- NAME`), which Docker copies from
  the deployer's shell, is a problem.
- Bind mount sources must be absolute paths on the node: Docker resolves `./data` against the
  deployer's working directory, which does not exist on the nodes.
- Service-level `tmpfs:` (silently dropped by `docker stack deploy`) becomes a tmpfs mount.
- `restart:` is honoured only as Docker's converter does (a fallback when there is no
  `deploy.restart_policy`); `restart: "no"` does not stop swarm restarting tasks, so it warns.
- Checks Docker only makes at deploy time (placement constraint syntax, mode, `replicas` with
  `global`, undeclared secrets/networks/volumes, missing secret files) are made at load time.
- Secrets and configs declared `external: true` take their value from the stack configuration
  (`swarm:secrets.NAME`, `swarm:configs.NAME`) instead of pre-existing swarm objects.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from swarm.suggest import did_you_mean
from swarm.schedule import read_service_schedule

DEFAULT_VERSION = (3, 13)
LATEST_MINOR = 13
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"
DEFAULT_NETWORK = "default"

# Names of services, networks, volumes, secrets and configs (Docker's schema).
NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


# ---------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    file: str
    path: str  # e.g. "services.api.deploy.resources.limits.memory"; "" for the whole file
    message: str  # what is expected and how to fix it

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class StackFileError(Exception):
    """A stack file is invalid; nothing must be deployed."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{len(problems)} {noun} in the stack file; nothing was deployed:\n{lines}")


# ---------------------------------------------------------------------------------------------
# Values, parsed exactly as Docker's Go code parses them. Each raises ValueError with the reason.

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_NS_MAX = 1 << 63


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"  # str.isdigit() also accepts other scripts' digits


def parse_duration(text: str) -> int:
    """Nanoseconds in `text`, as Go's time.ParseDuration reads it ("1m30s", "1.5h", "500ms")."""
    invalid = ValueError(
        f"invalid duration {text!r}: expected a number with a unit (ns, us, ms, s, m, h), like 10s or 1m30s"
    )
    rest, negative = text, False
    if rest[:1] in ("+", "-"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or _is_digit(rest[0])):
            raise invalid
        i, whole = 0, 0
        while i < len(rest) and _is_digit(rest[i]):
            whole = whole * 10 + int(rest[i])
            if whole > _NS_MAX:
                raise invalid
            i += 1
        has_whole, rest = i > 0, rest[i:]
        fraction, scale, has_fraction = 0, 1.0, False
        if rest[:1] == ".":
            rest, i, overflow = rest[1:], 0, False
            while i < len(rest) and _is_digit(rest[i]):
                # Like Go: digits past int64 precision are consumed but ignored.
                if not overflow:
                    candidate = fraction * 10 + int(rest[i])
                    if fraction > (_NS_MAX - 1) // 10 or candidate > _NS_MAX:
                        overflow = True
                    else:
                        fraction, scale = candidate, scale * 10
                i += 1
            has_fraction, rest = i > 0, rest[i:]
        if not (has_whole or has_fraction):
            raise invalid
        i = 0
        while i < len(rest) and not (rest[i] == "." or _is_digit(rest[i])):
            i += 1
        unit, rest = rest[:i], rest[i:]
        if unit not in _NS_PER_UNIT:
            raise invalid
        multiplier = _NS_PER_UNIT[unit]
        if whole > _NS_MAX // multiplier:
            raise invalid
        value = whole * multiplier
        if fraction:
            value += int(float(fraction) * (float(multiplier) / scale))  # float, as Go does
        total += value
        if value > _NS_MAX or total > _NS_MAX:
            raise invalid
    if negative:
        return -total
    if total > _NS_MAX - 1:
        raise invalid
    return total


def format_duration(nanoseconds: int) -> str:
    """`nanoseconds` as Go's Duration.String() writes it ("1m30s", "500ms", "1h0m0s")."""
    if nanoseconds == 0:
        return "0s"
    sign, value = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)

    def split(v: int, precision: int) -> tuple[int, str]:
        digits = f"{v % 10**precision:0{precision}d}".rstrip("0")
        return v // 10**precision, "." + digits if digits else ""

    if value < 1_000:
        return f"{sign}{value}ns"
    if value < 1_000_000:
        whole, fraction = split(value, 3)
        return f"{sign}{whole}{fraction}µs"
    if value < 1_000_000_000:
        whole, fraction = split(value, 6)
        return f"{sign}{whole}{fraction}ms"
    seconds, fraction = split(value, 9)
    text = f"{seconds % 60}{fraction}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


# A decimal float as Go's strconv.ParseFloat accepts it (underscores only between digits).
_GO_FLOAT = re.compile(r"[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?")
_BINARY_PREFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_memory(text: str) -> int:
    """Bytes in `text`, as go-units RAMInBytes reads it: binary multiples, "10G" is 10737418240."""
    invalid = ValueError(
        f"invalid size {text!r}: expected a number with an optional unit b, k, m, g, t or p, like 512M or 10G"
    )
    separator = max(text.rfind(char) for char in "0123456789. ")
    if separator < 0:
        raise invalid
    if text[separator] == " ":
        number, suffix = text[:separator], text[separator + 1 :]
    else:
        number, suffix = text[: separator + 1], text[separator + 1 :]
    if not _GO_FLOAT.fullmatch(number):
        raise invalid
    size = float(number)
    if size < 0:
        raise invalid
    suffix = suffix.lower()
    if suffix and suffix != "b":
        multiplier = _BINARY_PREFIXES.get(suffix[0])
        if multiplier is None or len(suffix) > 3 or suffix[1:] not in ("", "b", "ib"):
            raise invalid
        size *= multiplier
    if size >= 1 << 63:
        raise ValueError(f"size {text!r} is too large")
    return int(size)


_RATIONAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+/\d+")


def parse_cpus(text: str) -> int:
    """NanoCPUs in `text` ("0.5" is 500000000), as Docker's opts.ParseCPUs reads it."""
    if not _RATIONAL.fullmatch(text) or text.endswith("/0"):
        raise ValueError(f"invalid CPU count {text!r}: expected a number of CPUs as a string, like '0.5' or '2'")
    nano = Fraction(text) * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError(f"CPU count {text!r} is too precise: at most 9 decimal places")
    if nano < 0:
        raise ValueError(f"CPU count {text!r} must not be negative")
    return int(nano)


def go_string(value: Any) -> str:
    """A YAML scalar as Go's fmt.Sprint prints it: how Docker turns numbers into strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _go_float(value: float) -> str:
    # Go's %v for float64: shortest round-trip digits; exponent form when the decimal exponent
    # is below -4 or at least 6 (so 100000.0 is "100000" but 1000000.0 is "1e+06").
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    value = abs(value)
    if value == 0:
        return sign + "0"
    digits_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    point = len(digits) + exponent  # value = 0.<digits> * 10**point
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


class Port(NamedTuple):
    target: int
    published: int | None  # None: swarm picks one (or none is published, for host mode)
    protocol: str  # tcp | udp | sctp
    mode: str  # ingress | host


_PROTOCOLS = ("tcp", "udp", "sctp")


def _port_range(text: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    if not (first.isascii() and first.isdigit() and (not dash or (last.isascii() and last.isdigit()))):
        raise ValueError
    start, end = int(first), int(last) if dash else int(first)
    if end > 65535 or end < start:
        raise ValueError
    return start, end


def parse_port(text: str) -> tuple[list[Port], str | None]:
    """Ports in a short-syntax entry ("8080:80/udp", "9000-9002", "127.0.0.1:80:80"), expanded
    and ordered as Docker's nat.ParsePortSpec does, and the host IP if one was given (swarm
    ignores it and listens on every address)."""
    invalid = ValueError(
        f"invalid port {text!r}: expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL] with ports or ranges "
        'in 1-65535 and protocol tcp, udp or sctp, like "8080:80" or "53:53/udp"'
    )
    parts = text.split(":")
    container = parts[-1]
    host = parts[-2] if len(parts) >= 2 else ""
    ip = ":".join(parts[:-2])
    target, _, protocol = container.partition("/")
    protocol = protocol.partition("/")[0].lower() or "tcp"
    if not target or protocol not in _PROTOCOLS:
        raise invalid
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise invalid from None
    try:
        start, end = _port_range(target)
        host_start, host_end = _port_range(host) if host else (0, 0)
    except ValueError:
        raise invalid from None
    if host and end - start != host_end - host_start and end != start:
        raise invalid
    ports = []
    for offset in range(end - start + 1):
        if not host:
            published = [None]
        elif start == end:  # one target port published on each port of a host range
            published = list(range(host_start, host_end + 1))
        else:
            published = [host_start + offset]
        ports.extend(Port(start + offset, p or None, protocol, "ingress") for p in published)
    # Docker sorts the expanded ports as strings ("1000/tcp" before "998/tcp").
    ports.sort(key=lambda port: f"{port.target}/{port.protocol}")
    unspecified = ip in ("", "0.0.0.0", "::")
    return ports, None if unspecified else ip


class Constraint(NamedTuple):
    field: str  # node.role, node.hostname, node.id, node.platform.os/arch, node.labels.K, engine.labels.K
    operator: str  # == or !=
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{self.value}"


# Swarmkit's own pattern for a constraint's value.
_CONSTRAINT_VALUE = re.compile(r"^[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+$", re.IGNORECASE)
_CONSTRAINT_FIELDS = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9._-]+$")


def parse_constraint(text: str) -> Constraint:
    """A placement constraint, checked as swarm checks it, plus what swarm only finds out by
    never scheduling the task: an unknown field or role, or an unusable label key."""
    for operator in ("==", "!="):  # swarm tries == first: "a!=b==c" has the key "a!=b"
        if operator in text:
            key, value = (part.strip() for part in text.split(operator, 1))
            break
    else:
        raise ValueError(
            f"invalid constraint {text!r}: expected FIELD==VALUE or FIELD!=VALUE, like node.labels.type==cheap"
        )
    field = key.lower()
    for prefix in ("node.labels.", "engine.labels."):
        if field.startswith(prefix):
            label = key[len(prefix) :]
            if not _LABEL_KEY.match(label):
                raise ValueError(
                    f"invalid constraint {text!r}: label key {label!r} must be letters, digits, '-', '_' or '.'"
                )
            field = prefix + label
            break
    else:
        if field not in _CONSTRAINT_FIELDS:
            hint = did_you_mean(field, [*_CONSTRAINT_FIELDS, "node.labels.", "engine.labels."], limit=1)
            raise ValueError(
                f"invalid constraint {text!r}: unknown field {key!r}{hint or '; expected one of '}"
                f"{'' if hint else ', '.join(_CONSTRAINT_FIELDS) + ', node.labels.<key> or engine.labels.<key>'}"
            )
    if not _CONSTRAINT_VALUE.match(value):
        raise ValueError(f"invalid constraint {text!r}: value {value!r} is empty or has characters swarm refuses")
    if field == "node.role" and value.lower() not in ("manager", "worker"):
        hint = did_you_mean(value, ("manager", "worker"))
        raise ValueError(f"invalid constraint {text!r}: node.role is manager or worker{hint}")
    return Constraint(field, operator, value)


def split_command(text: str) -> list[str]:
    """A command string split into words as Docker does (github.com/google/shlex): quotes,
    backslash escapes (any character, also inside double quotes) and # comments."""
    words: list[str] = []
    word: list[str] | None = None  # None between words
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if word is None:
            if char in " \t\r\n":
                i += 1
                continue
            if char == "#":  # a comment runs to the end of the line
                while i < n and text[i] != "\n":
                    i += 1
                continue
            word = []
        if char in " \t\r\n":
            words.append("".join(word))
            word = None
        elif char == "\\":
            if i + 1 >= n:
                raise ValueError(f"invalid command {text!r}: it ends with a backslash")
            i += 1
            word.append(text[i])
        elif char in "'\"":
            end = i + 1
            while True:
                if end >= n:
                    raise ValueError(f"invalid command {text!r}: a {char} quote is not closed")
                if text[end] == char:
                    break
                if char == '"' and text[end] == "\\":
                    end += 1
                    if end >= n:
                        raise ValueError(f"invalid command {text!r}: a {char} quote is not closed")
                word.append(text[end])
                end += 1
            i = end
        else:
            word.append(char)
        i += 1
    if word is not None:
        words.append("".join(word))
    return words


def parse_env_file(path: Path) -> list[tuple[str, str | None]]:
    """Variables in an env file, read as Docker reads them: `NAME=value` taken verbatim (no
    quote removal, no trimming), `#` comments and blank lines skipped, `NAME` alone has no value."""
    variables = []
    text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.lstrip(" \t")
        if not name or " " in name or "\t" in name:
            raise ValueError(f"line {number}: variable name {name!r} is empty or contains whitespace")
        variables.append((name, value if equals else None))
    return variables


# ---------------------------------------------------------------------------------------------
# YAML, resolved as Docker's parser (gopkg.in/yaml.v3) resolves plain scalars.


class Timestamp(str):
    """A plain scalar that Docker's YAML parser turns into a time (and prints as one)."""


_GO_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}.*)?")
_KEYWORDS: dict[str, Any] = {
    **dict.fromkeys(("", "~", "null", "Null", "NULL")),
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
}
_PLAIN_TAG = "tag:swarm,compose:plain"  # an unquoted scalar, resolved below
_STR_TAG = "tag:yaml.org,2002:str"
_DEFAULT_TAGS = {yaml.SequenceNode: "tag:yaml.org,2002:seq", yaml.MappingNode: "tag:yaml.org,2002:map"}


class _Composer(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Parses into nodes (in C when libyaml is there); plain scalars are left to _resolve."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN_TAG if implicit[0] else _STR_TAG
        return _DEFAULT_TAGS[kind]


def _go_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64), falling back to ParseUint, as yaml.v3 tries them."""
    if not _GO_INT.fullmatch(text):
        return None
    sign, digits = (-1, text[1:]) if text[0] == "-" else (1, text.lstrip("+"))
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
        value = sign * int(digits, 8)  # a leading 0 is octal, as in YAML 1.1
    else:
        value = sign * int(digits, 0)
    fits = -(1 << 63) <= value < (1 << 63) or (0 <= value < (1 << 64) and text[0] not in "+-")
    return value if fits else None


def _resolve(text: str) -> Any:
    """A plain scalar's value under yaml.v3's rules: only true/false are booleans (not yes/on),
    no base-60 numbers, Go's integer syntax (0x1F, 0o17, 0440), floats need digits."""
    if text in _KEYWORDS:
        return _KEYWORDS[text]
    if text[0] not in "-+.0123456789":
        return text
    if _TIMESTAMP.fullmatch(text):
        return Timestamp(text)
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _YAML_FLOAT.fullmatch(plain if text[0] != "." else text):
        value = float(plain)
        if not math.isinf(value):  # Go's ParseFloat fails on overflow: the scalar stays a string
            return value
    return text


def _construct(node: yaml.Node, built: dict[int, Any]) -> Any:
    """The value of `node`; `built` keeps shared (anchored) nodes shared."""
    if id(node) in built:
        return built[id(node)]
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _PLAIN_TAG:
            value = _resolve(node.value)
        elif node.tag == _STR_TAG:
            value = node.value
        else:  # an explicit tag such as !!int: PyYAML's safe constructor knows them
            value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = built[id(node)] = []
        value.extend(_construct(child, built) for child in node.value)
    else:
        value = built[id(node)] = {}
        merged: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _PLAIN_TAG and key_node.value == "<<":
                # Merge keys: explicit keys win, then the earlier of several merged mappings.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in reversed(sources):
                    mapping = _construct(source, built)
                    if not isinstance(mapping, dict):
                        raise yaml.constructor.ConstructorError(
                            None, None, "<< merges mappings only", source.start_mark
                        )
                    merged |= mapping
                continue
            key = _construct(key_node, built)
            try:
                if key in lines:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"mapping key {key!r} is already defined at line {lines[key]}", key_node.start_mark
                    )
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a scalar", key_node.start_mark
                ) from None
            lines[key] = key_node.start_mark.line + 1
            value[key] = _construct(value_node, built)
        value.update({key: item for key, item in merged.items() if key not in value})
    built[id(node)] = value
    return value


def read_yaml(text: str) -> Any:
    """A YAML document, with scalars resolved as Docker resolves them."""
    composer = _Composer(text)
    try:
        node = composer.get_single_node()
    finally:
        composer.dispose()
    return None if node is None else _construct(node, {})


# ---------------------------------------------------------------------------------------------
# The model. Field values are normalised: bytes, NanoCPUs, nanoseconds, expanded ports.


@dataclass(frozen=True)
class Resources:
    nano_cpus: int = 0  # 0: not set
    memory_bytes: int = 0  # 0: not set
    pids: int = 0  # limits only; 0: not set
    generic_resources: dict[str, int] = field(default_factory=dict)  # reservations only: kind -> count


@dataclass(frozen=True)
class VolumeSpec:
    key: str  # name under the top-level `volumes:`
    name: str  # as created on the nodes: `<stack>_<key>` unless `name:` or external
    external: bool
    driver: str | None
    driver_opts: dict[str, str]
    labels: dict[str, str]


@dataclass(frozen=True)
class Mount:
    type: str  # bind | volume | tmpfs
    target: str
    source: str | None  # host path (bind), volume key (volume; None: anonymous), None (tmpfs)
    read_only: bool = False
    propagation: str | None = None  # bind only
    no_copy: bool = False  # volume only
    tmpfs_size: int | None = None  # tmpfs only, bytes
    volume: VolumeSpec | None = None  # the declared volume, for named volumes


@dataclass(frozen=True)
class FileReference:
    """A secret or config used by a service, with Docker's defaults applied."""

    source: str  # key under the top-level `secrets:`/`configs:`
    target: str  # file name; relative names live in /run/secrets (secrets) or / (configs)
    uid: str = "0"
    gid: str = "0"
    mode: int = 0o444


@dataclass(frozen=True)
class NetworkAttachment:
    network: str  # key under the top-level `networks:` ("default" when the service names none)
    aliases: tuple[str, ...] = ()
    driver_opts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...] | None  # ("CMD", ...), ("CMD-SHELL", cmd) or ("NONE",); None: image's
    interval: int | None = None  # nanoseconds
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None
    disable: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    condition: str | None  # none | on-failure | any
    delay: int | None = None  # nanoseconds
    max_attempts: int | None = None
    window: int | None = None


@dataclass(frozen=True)
class UpdatePolicy:
    """update_config or rollback_config, as declared (None: swarm's default)."""

    parallelism: int | None = None
    delay: int | None = None  # nanoseconds
    failure_action: str | None = None
    monitor: int | None = None
    max_failure_ratio: float | None = None
    order: str | None = None  # start-first | stop-first


@dataclass(frozen=True)
class Ulimit:
    soft: int
    hard: int


@dataclass(frozen=True)
class Logging:
    driver: str | None
    options: dict[str, str]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # container labels
    deploy_labels: dict[str, str] = field(default_factory=dict)  # service labels
    secrets: tuple[FileReference, ...] = ()
    configs: tuple[FileReference, ...] = ()
    networks: tuple[NetworkAttachment, ...] = ()
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    healthcheck: Healthcheck | None = None
    mode: str = "replicated"  # replicated | global
    replicas: int | None = 1  # None for global services
    constraints: tuple[Constraint, ...] = ()
    preferences: tuple[str, ...] = ()  # spread descriptors, e.g. "node.labels.zone"
    max_replicas_per_node: int | None = None
    limits: Resources = field(default_factory=Resources)
    reservations: Resources = field(default_factory=Resources)
    restart_policy: RestartPolicy | None = None
    update_config: UpdatePolicy | None = None
    rollback_config: UpdatePolicy | None = None
    endpoint_mode: str | None = None  # vip | dnsrr
    stop_grace_period: int | None = None  # nanoseconds
    stop_signal: str | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    init: bool | None = None
    tty: bool = False
    stdin_open: bool = False
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: dict[str, Ulimit] = field(default_factory=dict)
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (host, ip)
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    logging: Logging | None = None
    isolation: str | None = None
    schedule: str | None = None  # `x-schedule`: a cron expression; the service runs as a job (swarm/schedule.py)


@dataclass(frozen=True)
class NetworkSpec:
    key: str  # name under the top-level `networks:`
    name: str  # as deployed: exact name if external or `name:` is set, else `<stack>_<key>`
    external: bool
    driver_opts: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    ipam_driver: str | None = None
    subnets: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretSpec:
    key: str  # name under the top-level `secrets:`, and under `swarm:secrets` when external
    external: bool
    file: Path | None  # absolute path of the `file:`
    content: bytes | None  # the file's bytes; None when external (the value comes from config)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigSpec(SecretSpec):
    """A swarm config: same shape as a secret; external values come from `swarm:configs`."""


@dataclass(frozen=True)
class StackSpec:
    source: str
    version: str
    services: dict[str, ServiceSpec]
    networks: dict[str, NetworkSpec]  # only those some service uses, as docker stack deploy does
    volumes: dict[str, VolumeSpec]
    secrets: dict[str, SecretSpec]
    configs: dict[str, ConfigSpec]
    warnings: list[str]


# ---------------------------------------------------------------------------------------------
# The reader: walks the document once, collects every problem and warning.

Version = tuple[int, int]
V30, V31, V32, V33, V34, V35, V36, V37, V38, V39 = ((3, minor) for minor in range(10))
V310, V312, V313 = (3, 10), (3, 12), (3, 13)
_PROVIDER = "not supported by the Docker provider this program deploys with (pulumi-docker 5.2)"

# Keys Docker accepts for a service that swarm does not act upon, with the version that
# introduced them and what to do instead.
_IGNORED_SERVICE_KEYS: dict[str, tuple[Version, str]] = {
    "build": (V30, "swarm deploys images: build and push the image, then set `image`"),
    "cgroup_parent": (V30, "swarm services do not support it"),
    "cgroupns_mode": (V39, "swarm services do not support it"),
    "container_name": (V30, "swarm names containers itself (<stack>_<service>.<slot>.<id>)"),
    "credential_spec": (V33, "it applies to Windows nodes only"),
    "depends_on": (V30, "swarm starts services in no particular order: make each service retry its dependencies"),
    "devices": (V30, "swarm services do not support it"),
    "domainname": (V30, "swarm services do not support it"),
    "expose": (V30, "services on a shared network reach each other on every port"),
    "external_links": (V30, "swarm services do not support it"),
    "ipc": (V30, "swarm services do not support it"),
    "links": (V30, "services on a shared network reach each other by service name"),
    "mac_address": (V30, "swarm services do not support it"),
    "network_mode": (V30, "swarm services use the stack's networks"),
    "oom_score_adj": (V313, _PROVIDER),
    "pid": (V30, "swarm services do not support it"),
    "privileged": (V30, "swarm services do not support it"),
    "security_opt": (V30, "swarm services do not support it"),
    "shm_size": (V30, "swarm services do not support it"),
    "userns_mode": (V30, "swarm services do not support it"),
}
# Keys Docker refuses outright, with its advice.
_FORBIDDEN_SERVICE_KEYS = {
    "extends": "`extends` is not supported by docker stack deploy: write the service out in full",
    "volume_driver": "declare the volume under the top-level `volumes:` with its driver and use it from the service",
    "volumes_from": "declare a volume under the top-level `volumes:` and use it from each service that shares it",
    "cpu_quota": "set resource limits under deploy.resources",
    "cpu_shares": "set resource limits under deploy.resources",
    "cpuset": "set resource limits under deploy.resources",
    "mem_limit": "set resource limits under deploy.resources",
    "memswap_limit": "set resource limits under deploy.resources",
}
_SERVICE_KEYS: dict[str, Version] = {
    **dict.fromkeys(
        ("image", "command", "entrypoint", "environment", "env_file", "networks", "ports", "volumes")
        + ("healthcheck", "labels", "deploy", "stop_grace_period", "stop_signal", "user", "working_dir")
        + ("hostname", "tty", "stdin_open", "read_only", "cap_add", "cap_drop", "sysctls", "ulimits")
        + ("extra_hosts", "dns", "dns_search", "logging", "tmpfs", "restart"),
        V30,
    ),
    "secrets": V31,
    "configs": V33,
    "isolation": V35,
    "init": V37,
    **{key: version for key, (version, _) in _IGNORED_SERVICE_KEYS.items()},
    **dict.fromkeys(_FORBIDDEN_SERVICE_KEYS, V30),
}
_DEPLOY_KEYS = {
    **dict.fromkeys(("mode", "replicas", "labels", "update_config", "resources", "restart_policy", "placement"), V30),
    "endpoint_mode": V32,
    "rollback_config": V37,
}
_UPDATE_KEYS = {
    **dict.fromkeys(("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio"), V30),
    "order": V34,
}
_HEALTHCHECK_KEYS = {
    **dict.fromkeys(("disable", "interval", "retries", "test", "timeout"), V30),
    "start_period": V34,
    "start_interval": V312,
}
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_SECRET_MAX_BYTES = 500 * 1024  # swarm's limits
_CONFIG_MAX_BYTES = 1000 * 1024
_DOLLAR = re.compile(r"\$\$|\$")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _version_text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


class _Reader:
    def __init__(self, source: str, base_dir: Path, stack: str):
        self.source = source
        self.base_dir = base_dir
        self.stack = stack
        self.version: Version = DEFAULT_VERSION
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{self.source}: {path}: {message}")

    # -- structure

    def mapping(self, value: Any, path: str, keys: dict[str, Version], extensions: Version | None = V37) -> dict:
        """`value` as a mapping whose unknown or too-new keys are reported; {} if not a mapping."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, not {_kind(value)}")
            return {}
        for key in value:
            key_path = _join(path, str(key))
            if not isinstance(key, str):
                self.problem(key_path, f"keys must be strings, not {_kind(key)}: quote the key")
            elif key.startswith("x-") and extensions is not None:
                self.require(extensions, key_path, "extension fields (x-)")
            elif key in keys:
                self.require(keys[key], key_path, f"`{key}`")
            else:
                hint = did_you_mean(key, keys) or f"; expected one of: {', '.join(sorted(keys))}"
                self.problem(key_path, f"unknown key{hint}")
        return value

    def require(self, version: Version, path: str, what: str) -> None:
        if self.version < version:
            self.problem(
                path,
                f"{what} needs Compose file version {_version_text(version)} or later, and this file says "
                f"{_version_text(self.version)}: raise `version` (at most 3.{LATEST_MINOR}) or remove it",
            )

    def named_entries(self, value: Any, path: str) -> list[tuple[str, Any]]:
        """Entries of a section keyed by name (services, networks, ...), with names checked."""
        if value is None:
            return []
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of names to definitions, not {_kind(value)}")
            return []
        entries = []
        for name, definition in value.items():
            if not isinstance(name, str) or not NAME.match(name):
                self.problem(_join(path, str(name)), "names are letters, digits, '.', '_' and '-' only")
            else:
                entries.append((name, definition))
        return entries

    # -- scalars

    def string(self, value: Any, path: str) -> str | None:
        if isinstance(value, Timestamp):
            self.problem(path, f"Docker reads the unquoted {value} as a timestamp: quote it")
        elif isinstance(value, str):
            return value
        else:
            self.problem(path, f"must be a string, not {_kind(value)}: quote it")
        return None

    def boolean(self, value: Any, path: str) -> bool | None:
        if isinstance(value, bool):
            return value
        self.problem(path, f"must be true or false, not {_kind(value)}")
        return None

    def integer(self, value: Any, path: str, minimum: int = 0, maximum: int = (1 << 63) - 1) -> int | None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"must be a whole number, not {_kind(value)}")
        elif not minimum <= value <= maximum:
            self.problem(path, f"must be between {minimum} and {maximum}, not {value}")
        else:
            return value
        return None

    def number(self, value: Any, path: str, minimum: float = 0, maximum: float = math.inf) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.problem(path, f"must be a number, not {_kind(value)}")
        elif not minimum <= value <= maximum:
            self.problem(path, f"must be between {minimum} and {maximum}, not {go_string(value)}")
        else:
            return value
        return None

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str | None:
        text = self.string(value, path)
        if text is not None and text not in choices:
            self.problem(path, f"must be one of {', '.join(choices)}, not {text!r}")
            return None
        return text

    def duration(self, value: Any, path: str) -> int | None:
        text = self.string(value, path)
        if text is None:
            return None
        try:
            nanoseconds = parse_duration(text)
        except ValueError as error:
            self.problem(path, str(error))
            return None
        if nanoseconds < 0:
            self.problem(path, f"must not be negative, not {text!r}")
            return None
        return nanoseconds

    def scalar_text(self, value: Any, path: str) -> str | None:
        """A string or number used as a string (label and environment values, options)."""
        if isinstance(value, Timestamp):
            self.problem(path, f"Docker reads the unquoted {value} as a timestamp: quote it")
        elif isinstance(value, str):
            return value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return go_string(value)
        else:
            self.problem(path, f"must be a string or a number, not {_kind(value)}")
        return None

    # -- collections

    def strings(self, value: Any, path: str, *, single: bool = False, unique: bool = True) -> tuple[str, ...]:
        """A list of strings; `single` also accepts one string, as Compose's string_or_list."""
        if single and isinstance(value, str):
            return (self.string(value, path) or "",)
        if not isinstance(value, list):
            self.problem(path, f"must be a list of strings{' or a string' if single else ''}, not {_kind(value)}")
            return ()
        items = [self.string(item, _join(path, index)) for index, item in enumerate(value)]
        if unique:
            self.unique(value, path)
        return tuple(item for item in items if item is not None)

    def unique(self, items: list, path: str) -> None:
        seen: list = []
        for index, item in enumerate(items):
            if item in seen:
                self.problem(_join(path, index), f"duplicates item {seen.index(item)}: each item must be unique")
            seen.append(item)

    def dictionary(self, value: Any, path: str, separator: str = "=") -> dict[str, tuple[str | None, str]]:
        """A Compose list_or_dict: {"K": "V"} or ["K=V", "K"]; each key maps to its value (None
        when absent) and the path it came from."""
        result: dict[str, tuple[str | None, str]] = {}
        if isinstance(value, dict):
            for key, item in value.items():
                item_path = _join(path, str(key))
                if not isinstance(key, str) or not key:
                    self.problem(item_path, "keys must be non-empty strings")
                elif item is None:
                    result[key] = (None, item_path)
                elif (text := self.scalar_text(item, item_path)) is not None:
                    result[key] = (text, item_path)
        elif isinstance(value, list):
            self.unique(value, path)
            for index, item in enumerate(value):
                item_path = _join(path, index)
                text = self.string(item, item_path)
                if text is not None:
                    key, found, rest = text.partition(separator)
                    result[key] = (rest if found else None, item_path)
        elif value is not None:
            self.problem(path, f'must be a mapping or a list of "KEY{separator}VALUE" strings, not {_kind(value)}')
        return result

    def labels(self, value: Any, path: str) -> dict[str, str]:
        """Labels, sysctls and the like: a key without a value has the empty value, as in Docker."""
        return {key: text or "" for key, (text, _) in self.dictionary(value, path).items()}

    def options(self, value: Any, path: str) -> dict[str, str]:
        """Driver options: a mapping of names to strings or numbers."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of option names to values, not {_kind(value)}")
            return {}
        result = {}
        for key, item in value.items():
            item_path = _join(path, str(key))
            text = "" if item is None else self.scalar_text(item, item_path)
            if not isinstance(key, str):
                self.problem(item_path, "option names must be strings")
            elif text is not None:
                result[key] = text
        return result

    def interpolate(self, value: Any, path: str) -> Any:
        """`value` with `$$` turned into `$`, as Docker does; any other `$` is reported."""
        if not _has_dollar(value):
            return value
        if isinstance(value, dict):
            return {key: self.interpolate(item, _join(path, str(key))) for key, item in value.items()}
        if isinstance(value, list):
            return [self.interpolate(item, _join(path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            if any(match.group() == "$" for match in _DOLLAR.finditer(value)):
                self.problem(
                    path,
                    "variable substitution ($VAR, ${VAR}) is not supported: a deployment must not depend on the "
                    "shell that runs it; write the value, or `$$` for a literal `$`",
                )
                return value
            return type(value)(value.replace("$$", "$"))
        return value


def _has_dollar(value: Any) -> bool:
    if isinstance(value, str):
        return "$" in value
    if isinstance(value, dict):
        return any(_has_dollar(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_dollar(item) for item in value)
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {go_string(value)}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Top-level sections


def _external(r: _Reader, definition: dict, path: str) -> tuple[bool, str | None]:
    """`external: true` or the deprecated `external: {name: N}`: (is external, name given)."""
    value = definition.get("external")
    if value is None:
        return False, None
    if isinstance(value, dict):
        r.mapping(value, _join(path, "external"), {"name": V30}, extensions=None)
        name = value.get("name")
        if name is not None and definition.get("name") is not None:
            r.problem(_join(path, "external.name"), "conflicts with `name`: keep only `name`")
        return True, None if name is None else r.string(name, _join(path, "external.name"))
    return bool(r.boolean(value, _join(path, "external"))), None


def _volumes(r: _Reader, section: Any) -> dict[str, VolumeSpec]:
    keys = {"driver": V30, "driver_opts": V30, "external": V30, "labels": V30, "name": V34, "x-cluster-spec": V310}
    volumes = {}
    for key, definition in r.named_entries(section, "volumes"):
        path = _join("volumes", key)
        definition = r.mapping(definition, path, keys)
        external, external_name = _external(r, definition, path)
        name = r.string(definition["name"], _join(path, "name")) if definition.get("name") is not None else None
        driver = r.string(definition["driver"], _join(path, "driver")) if "driver" in definition else None
        if "x-cluster-spec" in definition:
            r.problem(
                _join(path, "x-cluster-spec"),
                "cluster (CSI) volumes are not supported: use a local volume or a bind mount",
            )
        if external:
            for conflicting in ("driver", "driver_opts", "labels"):
                if conflicting in definition:
                    r.problem(
                        _join(path, conflicting), "an external volume takes no `driver`, `driver_opts` or `labels`"
                    )
        deployed = name or external_name or (key if external else f"{r.stack}_{key}")
        volumes[key] = VolumeSpec(
            key=key,
            name=deployed,
            external=external,
            driver=driver,
            driver_opts=r.options(definition.get("driver_opts"), _join(path, "driver_opts")),
            labels=r.labels(definition.get("labels"), _join(path, "labels")),
        )
    return volumes


def _networks(r: _Reader, section: Any) -> dict[str, NetworkSpec]:
    keys = {
        **dict.fromkeys(("driver", "driver_opts", "ipam", "external", "internal", "labels"), V30),
        "attachable": V32,
        "name": V35,
    }
    networks = {}
    for key, definition in r.named_entries(section, "networks"):
        path = _join("networks", key)
        definition = r.mapping(definition, path, keys)
        external, external_name = _external(r, definition, path)
        name = r.string(definition["name"], _join(path, "name")) if definition.get("name") is not None else None
        if "driver" in definition and r.string(definition["driver"], _join(path, "driver")) not in (None, "overlay"):
            r.problem(
                _join(path, "driver"), "swarm services need overlay networks: use `driver: overlay` or leave it out"
            )
        if "attachable" in definition and r.boolean(definition["attachable"], _join(path, "attachable")) is False:
            r.warn(_join(path, "attachable"), "ignored: the program creates every network attachable")
        ipam = r.mapping(definition.get("ipam"), _join(path, "ipam"), {"driver": V30, "config": V30}, extensions=None)
        subnets = []
        config = ipam.get("config")
        if config is not None and not isinstance(config, list):
            r.problem(_join(path, "ipam.config"), f"must be a list of {{subnet: CIDR}}, not {_kind(config)}")
        for index, pool in enumerate(config or []):
            pool_path = _join(_join(path, "ipam.config"), index)
            pool = r.mapping(pool, pool_path, {"subnet": V30}, extensions=None)
            if "subnet" in pool and (subnet := r.string(pool["subnet"], _join(pool_path, "subnet"))):
                subnets.append(subnet)
        internal = definition.get("internal")
        networks[key] = NetworkSpec(
            key=key,
            name=name or external_name or (key if external else f"{r.stack}_{key}"),
            external=external,
            driver_opts=r.options(definition.get("driver_opts"), _join(path, "driver_opts")),
            internal=bool(internal is not None and r.boolean(internal, _join(path, "internal"))),
            labels=r.labels(definition.get("labels"), _join(path, "labels")),
            ipam_driver=r.string(ipam["driver"], _join(path, "ipam.driver")) if "driver" in ipam else None,
            subnets=tuple(subnets),
        )
    return networks


def _file_objects(r: _Reader, section: str, raw: Any, provided: Collection[str] | None) -> dict[str, SecretSpec]:
    """Top-level secrets or configs: file contents read now, external values left to config."""
    is_secret = section == "secrets"
    keys: dict[str, Version] = {"file": V30, "external": V30, "labels": V30, "name": V35, "template_driver": V38}
    if is_secret:
        keys |= {"driver": V38, "driver_opts": V38}
    spec_type = SecretSpec if is_secret else ConfigSpec
    limit = _SECRET_MAX_BYTES if is_secret else _CONFIG_MAX_BYTES
    objects = {}
    for key, definition in r.named_entries(raw, section):
        path = _join(section, key)
        definition = r.mapping(definition, path, keys)
        external, external_name = _external(r, definition, path)
        for unsupported in ("driver", "driver_opts", "template_driver"):
            if unsupported in definition:
                r.problem(_join(path, unsupported), "not supported: give the value with `file:` or `external: true`")
        if "name" in definition or external_name:
            name_path = _join(path, "name" if "name" in definition else "external.name")
            r.warn(
                name_path,
                f"ignored: deployed names carry a content hash (<stack>_{key}_<hash>) so a new value rolls out safely",
            )
        labels = r.labels(definition.get("labels"), _join(path, "labels"))
        file, content = None, None
        if external:
            if "file" in definition:
                r.problem(path, "has both `file:` and `external: true`: keep one")
            if provided is not None and key not in provided:
                secret = " --secret" if is_secret else ""
                r.problem(
                    path,
                    f"is external but the stack configuration has no value for it: run "
                    f"`pulumi config set{secret} --path 'swarm:{section}.{key}' VALUE`",
                )
        elif "file" not in definition:
            r.problem(path, "needs `file: PATH` (relative to the stack file) or `external: true` (value from config)")
        elif (name := r.string(definition["file"], _join(path, "file"))) is not None:
            file = (r.base_dir / name).absolute()
            if not file.is_file():
                r.problem(
                    _join(path, "file"),
                    f"{file} does not exist or is not a file (paths are relative to the stack file)",
                )
            else:
                content = file.read_bytes()
                if len(content) > limit:
                    r.problem(_join(path, "file"), f"{file} has {len(content)} bytes; swarm takes at most {limit}")
        objects[key] = spec_type(key=key, external=external, file=file, content=content, labels=labels)
    return objects


# ---------------------------------------------------------------------------------------------
# Services


@dataclass(frozen=True)
class _Declared:
    volumes: dict[str, VolumeSpec]
    networks: dict[str, NetworkSpec]
    secrets: dict[str, SecretSpec]
    configs: dict[str, ConfigSpec]


def _command(r: _Reader, value: Any, path: str) -> tuple[str, ...] | None:
    if isinstance(value, str):
        try:
            words = split_command(value)
        except ValueError as error:
            r.problem(path, str(error))
            return None
    else:
        words = list(r.strings(value, path, unique=False))
    return tuple(words) or None


def _environment(r: _Reader, raw: dict, path: str) -> dict[str, str]:
    variables: dict[str, tuple[str | None, str]] = {}
    if "env_file" in raw:
        env_files_path = _join(path, "env_file")
        files = r.strings(raw["env_file"], env_files_path, single=True)
        for index, name in enumerate(files):
            file_path = env_files_path if isinstance(raw["env_file"], str) else _join(env_files_path, index)
            file = r.base_dir / name
            try:
                variables |= {key: (value, file_path) for key, value in parse_env_file(file)}
            except FileNotFoundError:
                r.problem(file_path, f"{file.absolute()} does not exist (paths are relative to the stack file)")
            except (OSError, ValueError) as error:
                r.problem(file_path, f"{file.absolute()}: {error}")
    variables |= r.dictionary(raw.get("environment"), _join(path, "environment"))
    environment = {}
    for key, (value, origin) in variables.items():
        if value is None:
            r.problem(
                origin,
                f"{key} has no value, and docker stack deploy would copy it from the deployer's shell: "
                f"write {key}=VALUE (an empty value is {key}=)",
            )
        else:
            environment[key] = value
    return environment


def _file_references(
    r: _Reader, value: Any, path: str, declared: dict[str, SecretSpec], what: str
) -> tuple[FileReference, ...]:
    if not isinstance(value, list):
        r.problem(
            path, f"must be a list of {what} names or {{source, target, uid, gid, mode}} mappings, not {_kind(value)}"
        )
        return ()
    references = []
    keys = dict.fromkeys(("source", "target", "uid", "gid", "mode"), V30)
    for index, item in enumerate(value):
        item_path = _join(path, index)
        if isinstance(item, str):
            item = {"source": item}
            source_path = item_path
        else:
            item = r.mapping(item, item_path, keys, extensions=None)
            source_path = _join(item_path, "source")
            if "source" not in item:
                r.problem(item_path, f"needs `source`: the name of a top-level {what}")
                continue
        source = r.string(item["source"], source_path)
        if source is None:
            continue
        if source not in declared:
            hint = did_you_mean(source, declared)
            r.problem(source_path, f"{what} {source!r} is not declared under the top-level `{what}s:`{hint}")
        target = r.string(item["target"], _join(item_path, "target")) if "target" in item else None
        uid = r.string(item["uid"], _join(item_path, "uid")) if "uid" in item else None
        gid = r.string(item["gid"], _join(item_path, "gid")) if "gid" in item else None
        mode = r.number(item["mode"], _join(item_path, "mode"), maximum=0o7777) if "mode" in item else None
        references.append(
            FileReference(
                source=source,
                target=target or source,
                uid=uid or "0",
                gid=gid or "0",
                mode=0o444 if mode is None else int(mode),
            )
        )
    return tuple(references)


def _networks_of(r: _Reader, value: Any, path: str, declared: dict[str, NetworkSpec]) -> tuple[NetworkAttachment, ...]:
    if isinstance(value, list):
        names = r.strings(value, path)
        entries: list[tuple[str, Any, str]] = [(name, None, _join(path, index)) for index, name in enumerate(names)]
    elif isinstance(value, dict):
        entries = [(name, options, _join(path, name)) for name, options in r.named_entries(value, path)]
    else:
        if value is not None:
            r.problem(path, f"must be a list of network names or a mapping of names to options, not {_kind(value)}")
        entries = []
    attachments = []
    keys = {"aliases": V30, "ipv4_address": V30, "ipv6_address": V30, "driver_opts": V313}
    for name, options, entry_path in entries:
        if name not in declared and name != DEFAULT_NETWORK:
            hint = did_you_mean(name, declared)
            r.problem(entry_path, f"network {name!r} is not declared under the top-level `networks:`{hint}")
        options = r.mapping(options, entry_path, keys, extensions=None)
        for ignored in ("ipv4_address", "ipv6_address"):
            if ignored in options:
                r.warn(_join(entry_path, ignored), "ignored: swarm assigns task addresses itself")
        aliases = r.strings(options["aliases"], _join(entry_path, "aliases")) if "aliases" in options else ()
        driver_opts = r.options(options.get("driver_opts"), _join(entry_path, "driver_opts"))
        attachments.append(NetworkAttachment(name, aliases, driver_opts))
    return tuple(attachments) or (NetworkAttachment(DEFAULT_NETWORK),)


def _ports(r: _Reader, value: Any, path: str) -> tuple[Port, ...]:
    if not isinstance(value, list):
        r.problem(path, f"must be a list of ports, not {_kind(value)}")
        return ()
    r.unique(value, path)
    ports: list[Port] = []
    keys = dict.fromkeys(("mode", "target", "published", "protocol"), V32)
    for index, item in enumerate(value):
        item_path = _join(path, index)
        if isinstance(item, dict):
            r.require(V32, item_path, "the long port syntax")
            item = r.mapping(item, item_path, keys, extensions=None)
            if "target" not in item:
                r.problem(item_path, "needs `target`: the port inside the container")
                continue
            target = r.integer(item["target"], _join(item_path, "target"), 1, 65535)
            published = (
                r.integer(item["published"], _join(item_path, "published"), 0, 65535) if "published" in item else None
            )
            protocol = (
                r.choice(item["protocol"], _join(item_path, "protocol"), _PROTOCOLS) if "protocol" in item else "tcp"
            )
            mode = (
                r.choice(item["mode"], _join(item_path, "mode"), ("ingress", "host")) if "mode" in item else "ingress"
            )
            if target is not None and protocol is not None and mode is not None:
                ports.append(Port(target, published or None, protocol, mode))
        elif isinstance(item, (str, int)) and not isinstance(item, bool):
            try:
                expanded, ip = parse_port(str(item))
            except ValueError as error:
                r.problem(item_path, str(error))
                continue
            if ip:
                r.warn(item_path, f"host IP {ip} is ignored: swarm publishes on every address of every node")
            if any(port.target == 0 for port in expanded):
                r.problem(item_path, "the container port must be between 1 and 65535")
                continue
            ports.extend(expanded)
        else:
            r.problem(item_path, f'must be a port string like "8080:80", a number or a mapping, not {_kind(item)}')
    published = [(port.published, port.protocol) for port in ports if port.published]
    for number, protocol in sorted({entry for entry in published if published.count(entry) > 1}):
        r.problem(path, f"port {number}/{protocol} is published more than once")
    return tuple(ports)


def _short_volume(spec: str) -> dict[str, Any]:
    """A short-syntax volume ("SOURCE:TARGET:OPTIONS"), split as Docker's ParseVolume does."""
    if not spec:
        raise ValueError("invalid empty volume spec")
    if len(spec) <= 2:
        return {"type": "volume", "target": spec}
    fields: dict[str, Any] = {}
    buffer = ""
    for char in spec + "\0":
        if char == ":" and len(buffer) == 1 and buffer.isalpha():
            buffer += char  # a Windows drive letter, as Docker allows
        elif char in ":\0":
            if not buffer:
                raise ValueError(f"invalid spec {spec!r}: empty section between colons")
            if "source" not in fields and char == "\0":
                fields["target"] = buffer
            elif "source" not in fields:
                fields["source"] = buffer
            elif "target" not in fields:
                fields["target"] = buffer
            elif char == ":":
                raise ValueError(f"invalid spec {spec!r}: too many colons")
            else:
                fields["options"] = buffer.split(",")
            buffer = ""
        else:
            buffer += char
    source = fields.get("source", "")
    is_path = (
        source[:1] in (".", "/", "~")
        or source.startswith("\\\\")
        or (len(source) > 1 and source[0].isalpha() and source[1] == ":")
    )
    fields["type"] = "bind" if is_path else "volume"
    return fields


def _mounts(r: _Reader, value: Any, path: str, volumes: dict[str, VolumeSpec]) -> list[Mount]:
    if not isinstance(value, list):
        r.problem(path, f"must be a list of volumes, not {_kind(value)}")
        return []
    r.unique(value, path)
    mounts = []
    keys = {
        **dict.fromkeys(("type", "source", "target", "read_only", "consistency", "bind", "volume"), V32),
        "tmpfs": V36,
    }
    for index, item in enumerate(value):
        item_path = _join(path, index)
        if isinstance(item, str):
            try:
                fields = _short_volume(item)
            except ValueError as error:
                r.problem(item_path, str(error))
                continue
            options = {}
            for option in fields.pop("options", []):
                if option in ("ro", "rw"):
                    options["read_only"] = option == "ro"
                elif option == "nocopy":
                    options["volume"] = {"nocopy": True}
                elif option in _PROPAGATIONS:
                    options["bind"] = {"propagation": option}
                else:
                    r.warn(item_path, f"option {option!r} is ignored by swarm")
            fields |= options
        elif isinstance(item, dict):
            r.require(V32, item_path, "the long volume syntax")
            fields = r.mapping(item, item_path, keys, extensions=None)
            if "type" not in fields:
                r.problem(item_path, "needs `type`: volume, bind or tmpfs")
                continue
        else:
            r.problem(item_path, f'must be a string like "/host/path:/container/path" or a mapping, not {_kind(item)}')
            continue
        mount = _mount(r, fields, item_path, volumes)
        if mount is not None:
            mounts.append(mount)
    return mounts


def _mount(r: _Reader, fields: dict, path: str, volumes: dict[str, VolumeSpec]) -> Mount | None:
    kind = r.choice(fields["type"], _join(path, "type"), ("volume", "bind", "tmpfs", "npipe", "cluster"))
    if kind in ("npipe", "cluster"):
        r.problem(_join(path, "type"), f"{kind} mounts are not supported: use volume, bind or tmpfs")
        return None
    target = r.string(fields["target"], _join(path, "target")) if "target" in fields else None
    source = r.string(fields["source"], _join(path, "source")) if fields.get("source") not in (None, "") else None
    read_only = bool("read_only" in fields and r.boolean(fields["read_only"], _join(path, "read_only")))
    if "consistency" in fields:
        r.warn(_join(path, "consistency"), "ignored: it only matters to Docker Desktop")
    if not target or not target.startswith("/"):
        r.problem(_join(path, "target"), "needs an absolute path inside the container")
    for option, owner in (("bind", "bind"), ("volume", "volume"), ("tmpfs", "tmpfs")):
        if option in fields and kind != owner:
            r.problem(_join(path, option), f"{option} options are incompatible with type {kind}")
    if kind is None or not target:
        return None
    if kind == "bind":
        bind = r.mapping(fields.get("bind"), _join(path, "bind"), {"propagation": V32}, extensions=None)
        propagation = (
            r.choice(bind["propagation"], _join(path, "bind.propagation"), _PROPAGATIONS)
            if "propagation" in bind
            else None
        )
        if source is None or not source.startswith("/"):
            r.problem(
                _join(path, "source"),
                f"a bind mount needs an absolute path on the node, not {source or 'nothing'!r}: relative paths "
                "would name the deployer's directories, which do not exist on the nodes",
            )
            return None
        return Mount("bind", target, source, read_only, propagation=propagation)
    if kind == "tmpfs":
        tmpfs = r.mapping(fields.get("tmpfs"), _join(path, "tmpfs"), {"size": V36}, extensions=None)
        size = r.integer(tmpfs["size"], _join(path, "tmpfs.size")) if "size" in tmpfs else None
        if source is not None:
            r.problem(_join(path, "source"), "a tmpfs mount takes no source")
        return Mount("tmpfs", target, None, read_only, tmpfs_size=size)
    options = r.mapping(fields.get("volume"), _join(path, "volume"), {"nocopy": V32}, extensions=None)
    no_copy = bool("nocopy" in options and r.boolean(options["nocopy"], _join(path, "volume.nocopy")))
    if source is not None and source not in volumes:
        hint = did_you_mean(source, volumes)
        r.problem(_join(path, "source"), f"volume {source!r} is not declared under the top-level `volumes:`{hint}")
        return None
    return Mount("volume", target, source, read_only, no_copy=no_copy, volume=volumes.get(source) if source else None)


def _healthcheck(r: _Reader, value: Any, path: str) -> Healthcheck | None:
    raw = r.mapping(value, path, _HEALTHCHECK_KEYS, extensions=None)
    if not isinstance(value, dict):
        return None
    test: tuple[str, ...] | None = None
    if "test" in raw:
        if isinstance(raw["test"], str):
            test = ("CMD-SHELL", raw["test"])
        else:
            test = r.strings(raw["test"], _join(path, "test"), unique=False) or None
            if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
                r.problem(
                    _join(path, "test"),
                    'a list test starts with "CMD", "CMD-SHELL" or "NONE"; a string runs in a shell',
                )
    disable = bool("disable" in raw and r.boolean(raw["disable"], _join(path, "disable")))
    if disable and test:
        r.problem(path, "`test` and `disable: true` cannot be set at the same time")
    if "start_interval" in raw:
        r.warn(_join(path, "start_interval"), f"ignored: {_PROVIDER}")

    def duration(key: str) -> int | None:
        return r.duration(raw[key], _join(path, key)) if key in raw else None

    retries = r.number(raw["retries"], _join(path, "retries")) if "retries" in raw else None
    return Healthcheck(
        test=test,
        interval=duration("interval"),
        timeout=duration("timeout"),
        start_period=duration("start_period"),
        start_interval=duration("start_interval"),
        retries=None if retries is None else int(retries),
        disable=disable,
    )


def _update_policy(r: _Reader, value: Any, path: str, failure_actions: tuple[str, ...]) -> UpdatePolicy | None:
    raw = r.mapping(value, path, _UPDATE_KEYS, extensions=None)
    if not isinstance(value, dict):
        return None
    ratio = (
        r.number(raw["max_failure_ratio"], _join(path, "max_failure_ratio"), 0, 1)
        if "max_failure_ratio" in raw
        else None
    )
    return UpdatePolicy(
        parallelism=r.integer(raw["parallelism"], _join(path, "parallelism")) if "parallelism" in raw else None,
        delay=r.duration(raw["delay"], _join(path, "delay")) if "delay" in raw else None,
        failure_action=r.choice(raw["failure_action"], _join(path, "failure_action"), failure_actions)
        if "failure_action" in raw
        else None,
        monitor=r.duration(raw["monitor"], _join(path, "monitor")) if "monitor" in raw else None,
        max_failure_ratio=ratio,
        order=r.choice(raw["order"], _join(path, "order"), ("start-first", "stop-first")) if "order" in raw else None,
    )


def _resources(r: _Reader, value: Any, path: str, *, reservations: bool) -> Resources:
    keys = {"cpus": V30, "memory": V30, **({"generic_resources": V35} if reservations else {"pids": V39})}
    raw = r.mapping(value, path, keys, extensions=None)
    nano_cpus = memory = pids = 0
    if "cpus" in raw and (text := r.string(raw["cpus"], _join(path, "cpus"))) is not None:
        try:
            nano_cpus = parse_cpus(text)
        except ValueError as error:
            r.problem(_join(path, "cpus"), str(error))
    if "memory" in raw and (text := r.string(raw["memory"], _join(path, "memory"))) is not None:
        try:
            memory = parse_memory(text)
        except ValueError as error:
            r.problem(_join(path, "memory"), str(error))
    if "pids" in raw:
        pids = r.integer(raw["pids"], _join(path, "pids")) or 0
        r.warn(_join(path, "pids"), f"ignored: {_PROVIDER}")
    generic: dict[str, int] = {}
    if "generic_resources" in raw:
        entries = raw["generic_resources"]
        entries_path = _join(path, "generic_resources")
        if not isinstance(entries, list):
            r.problem(
                entries_path, f"must be a list of {{discrete_resource_spec: {{kind, value}}}}, not {_kind(entries)}"
            )
            entries = []
        for index, entry in enumerate(entries):
            entry_path = _join(entries_path, index)
            spec_path = _join(entry_path, "discrete_resource_spec")
            entry = r.mapping(entry, entry_path, {"discrete_resource_spec": V35}, extensions=None)
            spec = r.mapping(
                entry.get("discrete_resource_spec"), spec_path, {"kind": V35, "value": V35}, extensions=None
            )
            if "kind" not in spec or "value" not in spec:
                r.problem(spec_path, "needs `kind` (like GPU) and `value` (how many)")
                continue
            kind = r.string(spec["kind"], _join(spec_path, "kind"))
            count = r.number(spec["value"], _join(spec_path, "value"), 1)
            if kind in generic:
                r.problem(_join(spec_path, "kind"), f"{kind} is reserved more than once")
            elif kind and count is not None:
                generic[kind] = int(count)
    return Resources(nano_cpus, memory, pids, generic)


def _reservations_within_limits(r: _Reader, reservations: Resources, limits: Resources, path: str) -> None:
    """A reservation above its own limit: Docker refuses the task (the container could never get
    what the scheduler reserved for it), so it would only show up after deploy."""
    for name, reserved, limit in (
        ("cpus", reservations.nano_cpus, limits.nano_cpus),
        ("memory", reservations.memory_bytes, limits.memory_bytes),
    ):
        if limit and reserved > limit:
            r.problem(
                _join(path, f"reservations.{name}"),
                f"reserves more than its own limit (limits.{name}); Docker refuses such a task: "
                f"raise limits.{name} or lower reservations.{name}",
            )


def _placement(r: _Reader, value: Any, path: str) -> tuple[tuple[Constraint, ...], tuple[str, ...], int | None]:
    raw = r.mapping(
        value, path, {"constraints": V30, "preferences": V33, "max_replicas_per_node": V38}, extensions=None
    )
    constraints = []
    if "constraints" in raw:
        for index, text in enumerate(r.strings(raw["constraints"], _join(path, "constraints"), unique=False)):
            try:
                constraints.append(parse_constraint(text))
            except ValueError as error:
                r.problem(_join(_join(path, "constraints"), index), str(error))
    spreads = []
    preferences = raw.get("preferences")
    if preferences is not None and not isinstance(preferences, list):
        r.problem(
            _join(path, "preferences"), f"must be a list of {{spread: node.labels.KEY}}, not {_kind(preferences)}"
        )
        preferences = []
    for index, preference in enumerate(preferences or []):
        preference_path = _join(_join(path, "preferences"), index)
        preference = r.mapping(preference, preference_path, {"spread": V33}, extensions=None)
        if (spread := r.string(preference.get("spread"), _join(preference_path, "spread"))) is not None:
            try:  # a spread descriptor names what a constraint can name
                spreads.append(parse_constraint(f"{spread}==x").field)
            except ValueError:
                r.problem(_join(preference_path, "spread"), f"{spread!r} is not a node attribute: use node.labels.KEY")
    max_replicas = None
    if "max_replicas_per_node" in raw:
        max_replicas = r.integer(raw["max_replicas_per_node"], _join(path, "max_replicas_per_node")) or None
    return tuple(constraints), tuple(spreads), max_replicas


def _restart_policy(r: _Reader, value: Any, path: str) -> RestartPolicy | None:
    raw = r.mapping(value, path, dict.fromkeys(("condition", "delay", "max_attempts", "window"), V30), extensions=None)
    if not isinstance(value, dict):
        return None
    return RestartPolicy(
        condition=r.choice(raw["condition"], _join(path, "condition"), ("none", "on-failure", "any"))
        if "condition" in raw
        else None,
        delay=r.duration(raw["delay"], _join(path, "delay")) if "delay" in raw else None,
        max_attempts=r.integer(raw["max_attempts"], _join(path, "max_attempts")) if "max_attempts" in raw else None,
        window=r.duration(raw["window"], _join(path, "window")) if "window" in raw else None,
    )


def _legacy_restart(r: _Reader, value: Any, path: str) -> RestartPolicy | None:
    """`restart:`, used by docker stack deploy only when there is no deploy.restart_policy."""
    text = r.string(value, path)
    if text is None:
        return None
    policy, _, count = text.partition(":")
    if policy in ("", "no"):
        r.warn(
            path,
            "does not stop swarm from restarting tasks (its default condition is any): "
            "use deploy.restart_policy.condition: none",
        )
        return None
    if policy in ("always", "unless-stopped") and not count:
        return RestartPolicy("any")
    if policy == "on-failure" and (not count or count.isdigit()):
        return RestartPolicy("on-failure", max_attempts=int(count) if count else None)
    r.problem(path, f"invalid restart policy {text!r}: expected no, always, unless-stopped or on-failure[:MAX_RETRIES]")
    return None


def _ulimits(r: _Reader, value: Any, path: str) -> dict[str, Ulimit]:
    if not isinstance(value, dict):
        r.problem(path, f"must be a mapping of limit names to a number or {{soft, hard}}, not {_kind(value)}")
        return {}
    r.warn(path, f"ignored: {_PROVIDER}")
    ulimits = {}
    for name, limit in value.items():
        limit_path = _join(path, str(name))
        if not isinstance(name, str):
            r.problem(limit_path, "limit names are strings, like nofile")
        elif isinstance(limit, dict):
            limit = r.mapping(limit, limit_path, {"soft": V30, "hard": V30}, extensions=None)
            if "soft" not in limit or "hard" not in limit:
                r.problem(limit_path, "needs both `soft` and `hard`")
                continue
            soft = r.integer(limit["soft"], _join(limit_path, "soft"), minimum=-1)
            hard = r.integer(limit["hard"], _join(limit_path, "hard"), minimum=-1)
            if soft is not None and hard is not None:
                ulimits[name] = Ulimit(soft, hard)
        elif (single := r.integer(limit, limit_path, minimum=-1)) is not None:
            ulimits[name] = Ulimit(single, single)
    return ulimits


def _extra_hosts(r: _Reader, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict):  # Docker turns the mapping form into sorted "host:ip" entries
        entries = sorted(f"{host}:{ip}" for host, (ip, _) in r.dictionary(value, path).items())
        paths = [path] * len(entries)
    else:
        entries = list(r.strings(value, path))
        paths = [_join(path, index) for index in range(len(entries))]
    hosts = []
    for entry, entry_path in zip(entries, paths, strict=True):
        host, found, ip = entry.partition(":")
        if not found or not host or not ip:
            r.problem(entry_path, f"expected HOST:IP, not {entry!r}")
        else:
            hosts.append((host, ip))
    return tuple(hosts)


def _logging(r: _Reader, value: Any, path: str) -> Logging | None:
    raw = r.mapping(value, path, {"driver": V30, "options": V30}, extensions=None)
    if not isinstance(value, dict):
        return None
    driver = r.string(raw["driver"], _join(path, "driver")) if "driver" in raw else None
    return Logging(driver, r.options(raw.get("options"), _join(path, "options")))


def _tmpfs(r: _Reader, value: Any, path: str) -> list[Mount]:
    mounts = []
    for index, target in enumerate(r.strings(value, path, single=True)):
        target_path = path if isinstance(value, str) else _join(path, index)
        if ":" in target or not target.startswith("/"):
            r.problem(
                target_path,
                "expected an absolute path; for options use a volume of `type: tmpfs` with `tmpfs: {size: BYTES}`",
            )
        else:
            mounts.append(Mount("tmpfs", target, None))
    return mounts


def _service(r: _Reader, name: str, value: Any, declared: _Declared) -> ServiceSpec:
    path = _join("services", name)
    raw = r.mapping(value, path, _SERVICE_KEYS)
    if not isinstance(value, dict):
        return ServiceSpec(name=name, image="")
    for key, advice in _FORBIDDEN_SERVICE_KEYS.items():
        if key in raw:
            r.problem(_join(path, key), f"docker stack deploy refuses it: {advice}")
    for key, (_, advice) in _IGNORED_SERVICE_KEYS.items():
        if key in raw:
            r.warn(_join(path, key), f"ignored: {advice}")

    def at(key: str) -> str:
        return _join(path, key)

    def optional(key: str, read: Callable[[Any, str], Any], default: Any = None) -> Any:
        return read(raw[key], at(key)) if key in raw else default

    image = optional("image", r.string)
    if "image" not in raw:
        r.problem(path, "needs `image`: swarm runs images, it does not build them")

    deploy = r.mapping(raw.get("deploy"), at("deploy"), _DEPLOY_KEYS, extensions=None)
    deploy_path = at("deploy")
    mode = "replicated"
    if "mode" in deploy:
        mode_path = _join(deploy_path, "mode")
        mode = r.string(deploy["mode"], mode_path) or mode
        if mode in ("replicated-job", "global-job"):
            r.problem(mode_path, f"jobs are {_PROVIDER}: use replicated or global")
        elif mode not in ("replicated", "global"):
            r.problem(mode_path, f"must be replicated or global, not {mode!r}")
    replicas: int | None = None if mode == "global" else 1
    if "replicas" in deploy:
        replicas = r.integer(deploy["replicas"], _join(deploy_path, "replicas"))
        if mode == "global":
            r.problem(
                _join(deploy_path, "replicas"),
                "a global service runs one task per node: remove `replicas` or use mode replicated",
            )
            replicas = None
    constraints, preferences, max_replicas = _placement(r, deploy.get("placement"), _join(deploy_path, "placement"))
    if max_replicas is not None and mode == "global":
        r.problem(_join(deploy_path, "placement.max_replicas_per_node"), "applies to replicated services only")
    resources = r.mapping(
        deploy.get("resources"), _join(deploy_path, "resources"), {"limits": V30, "reservations": V30}, extensions=None
    )
    limits = _resources(r, resources.get("limits"), _join(deploy_path, "resources.limits"), reservations=False)
    reservations = _resources(
        r, resources.get("reservations"), _join(deploy_path, "resources.reservations"), reservations=True
    )
    _reservations_within_limits(r, reservations, limits, _join(deploy_path, "resources"))
    endpoint_mode = None
    if "endpoint_mode" in deploy and (text := r.string(deploy["endpoint_mode"], _join(deploy_path, "endpoint_mode"))):
        endpoint_mode = text.lower()  # Docker lower-cases it
        if endpoint_mode not in ("vip", "dnsrr"):
            r.problem(_join(deploy_path, "endpoint_mode"), f"must be vip or dnsrr, not {text!r}")
    restart_policy = _restart_policy(r, deploy.get("restart_policy"), _join(deploy_path, "restart_policy"))
    if "restart" in raw:
        if "restart_policy" in deploy:
            r.warn(at("restart"), "ignored because deploy.restart_policy is set")
        else:
            restart_policy = _legacy_restart(r, raw["restart"], at("restart"))

    ports = optional("ports", lambda value, p: _ports(r, value, p), ())
    if endpoint_mode == "dnsrr" and any(port.mode == "ingress" and port.published for port in ports):
        r.problem(at("ports"), "ports published in ingress mode need endpoint_mode vip; publish them with mode: host")
    mounts = optional("volumes", lambda value, p: _mounts(r, value, p, declared.volumes), [])
    mounts += optional("tmpfs", lambda value, p: _tmpfs(r, value, p), [])
    for flag in ("tty", "stdin_open"):
        if raw.get(flag) is True:
            r.warn(at(flag), f"ignored: {_PROVIDER}")
    schedule = read_service_schedule(
        raw, mode, restart_policy.condition if restart_policy else None,
        lambda key, message: r.problem(at(key), message), lambda key, message: r.warn(at(key), message),
    )

    return ServiceSpec(
        name=name,
        image=image or "",
        entrypoint=optional("entrypoint", lambda value, p: _command(r, value, p)),
        command=optional("command", lambda value, p: _command(r, value, p)),
        environment=_environment(r, raw, path),
        labels=r.labels(raw.get("labels"), at("labels")),
        deploy_labels=r.labels(deploy.get("labels"), _join(deploy_path, "labels")),
        secrets=optional("secrets", lambda value, p: _file_references(r, value, p, declared.secrets, "secret"), ()),
        configs=optional("configs", lambda value, p: _file_references(r, value, p, declared.configs, "config"), ()),
        networks=_networks_of(r, raw.get("networks"), at("networks"), declared.networks),
        ports=ports,
        mounts=tuple(mounts),
        healthcheck=optional("healthcheck", lambda value, p: _healthcheck(r, value, p)),
        mode=mode,
        replicas=replicas,
        constraints=constraints,
        preferences=preferences,
        max_replicas_per_node=max_replicas,
        limits=limits,
        reservations=reservations,
        restart_policy=restart_policy,
        update_config=_update_policy(
            r, deploy.get("update_config"), _join(deploy_path, "update_config"), ("continue", "pause", "rollback")
        ),
        rollback_config=_update_policy(
            r, deploy.get("rollback_config"), _join(deploy_path, "rollback_config"), ("continue", "pause")
        ),
        endpoint_mode=endpoint_mode,
        stop_grace_period=optional("stop_grace_period", r.duration),
        stop_signal=optional("stop_signal", r.string),
        user=optional("user", r.string),
        working_dir=optional("working_dir", r.string),
        hostname=optional("hostname", r.string),
        init=optional("init", r.boolean),
        tty=bool(optional("tty", r.boolean)),
        stdin_open=bool(optional("stdin_open", r.boolean)),
        read_only=bool(optional("read_only", r.boolean)),
        cap_add=optional("cap_add", r.strings, ()),
        cap_drop=optional("cap_drop", r.strings, ()),
        sysctls=r.labels(raw.get("sysctls"), at("sysctls")),
        ulimits=optional("ulimits", lambda value, p: _ulimits(r, value, p), {}),
        extra_hosts=optional("extra_hosts", lambda value, p: _extra_hosts(r, value, p), ()),
        dns=optional("dns", lambda value, p: r.strings(value, p, single=True), ()),
        dns_search=optional("dns_search", lambda value, p: r.strings(value, p, single=True), ()),
        logging=optional("logging", lambda value, p: _logging(r, value, p)),
        isolation=optional("isolation", r.string),
        schedule=schedule,
    )


# ---------------------------------------------------------------------------------------------
# Entry points

_TOP_KEYS = {"version": V30, "services": V30, "networks": V30, "volumes": V30, "secrets": V31, "configs": V33}


def _read_version(r: _Reader, document: dict) -> str:
    value = document.get("version")
    if value is None:
        return _version_text(DEFAULT_VERSION)
    if not isinstance(value, str):
        r.problem("version", f'must be a string, not {_kind(value)}: quote it, like version: "3.8"')
        return _version_text(DEFAULT_VERSION)
    match = re.fullmatch(r"3(?:\.(\d+))?", value)
    if value == "" or (match and match.group(1) is None):
        return _version_text(DEFAULT_VERSION)  # "3" means the latest 3.x, as in Docker
    if not match or int(match.group(1)) > LATEST_MINOR or match.group(1) != str(int(match.group(1))):
        r.problem(
            "version", f"unsupported Compose file version {value!r}: docker stack deploy reads 3.0 to 3.{LATEST_MINOR}"
        )
        return _version_text(DEFAULT_VERSION)
    r.version = (3, int(match.group(1)))
    return value


def parse_stack(
    document: Any,
    *,
    source: str,
    base_dir: Path,
    stack: str,
    external_secret_names: Collection[str] | None = None,
    external_config_names: Collection[str] | None = None,
) -> StackSpec:
    """The stack described by a parsed Compose document.

    `base_dir` anchors relative `file:` and `env_file` paths (the Compose file's directory).
    `external_secret_names`/`external_config_names` are the names with a value in the stack
    configuration; None skips that check (offline tools that have no configuration).
    Raises StackFileError listing every problem.
    """
    r = _Reader(source, base_dir, stack)
    if not isinstance(document, dict):
        r.problem("", f"must be a mapping with a `services:` section, not {_kind(document)}")
        raise StackFileError(r.problems)
    version = _read_version(r, document)
    r.mapping(document, "", _TOP_KEYS, extensions=V34)
    if not document.get("services"):
        r.problem("services", "expected at least one service")
    sections = {
        key: r.interpolate(document.get(key), key) for key in ("services", "networks", "volumes", "secrets", "configs")
    }
    declared = _Declared(
        volumes=_volumes(r, sections["volumes"]),
        networks=_networks(r, sections["networks"]),
        secrets=_file_objects(r, "secrets", sections["secrets"], external_secret_names),
        configs=_file_objects(r, "configs", sections["configs"], external_config_names),
    )
    services = {
        name: _service(r, name, definition, declared)
        for name, definition in r.named_entries(sections["services"], "services")
    }

    used = {attachment.network for service in services.values() for attachment in service.networks}
    networks = {key: network for key, network in declared.networks.items() if key in used}
    if DEFAULT_NETWORK in used and DEFAULT_NETWORK not in networks:
        networks[DEFAULT_NETWORK] = NetworkSpec(DEFAULT_NETWORK, f"{stack}_{DEFAULT_NETWORK}", external=False)
    for key in declared.networks.keys() - used:
        r.warn(_join("networks", key), "no service uses this network: it is not created")
    if r.problems:
        raise StackFileError(r.problems)
    return StackSpec(
        source=source,
        version=version,
        services=services,
        networks=networks,
        volumes=declared.volumes,
        secrets=declared.secrets,
        configs=declared.configs,
        warnings=r.warnings,
    )


def describe_yaml_error(error: Exception) -> str:
    """A YAML parser error as one line: where (line and column, counted from 1) and the parser's
    problem, without PyYAML's `in "<unicode string>"` or a traceback."""
    if isinstance(error, UnicodeDecodeError):
        return f"is not UTF-8 text (byte {error.start}: {error.reason})"
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).split("\n")[0]
    context = getattr(error, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"is not valid YAML: {where}{problem}" + (f" ({context})" if context else "")


def display_path(path: Path) -> str:
    """`path` as messages show it: relative to the project (the folder holding Pulumi.yaml)
    when it is inside one, else as given."""
    path = Path(path)
    absolute = path.absolute()
    for folder in absolute.parents:
        if (folder / "Pulumi.yaml").is_file():
            return str(absolute.relative_to(folder))
    return str(path)


def read_stack_file(path: Path) -> Any:
    """The YAML document at `path`, read as Docker reads it; StackFileError if it cannot be."""
    source = display_path(path)
    try:
        return read_yaml(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StackFileError([Problem(source, "", f"cannot be read: {error.strerror or error}")]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise StackFileError([Problem(source, "", describe_yaml_error(error))]) from None


def load_stack_file(
    path: Path,
    *,
    stack: str,
    external_secret_names: Collection[str] | None = None,
    external_config_names: Collection[str] | None = None,
) -> StackSpec:
    """The stack described by the Compose file at `path` (see parse_stack). The model catalogue
    a stack file may name is not expanded here: swarm.catalogue.load_stack does that."""
    source = display_path(path)
    document = read_stack_file(path)
    return parse_stack(
        document,
        source=source,
        base_dir=path.parent,
        stack=stack,
        external_secret_names=external_secret_names,
        external_config_names=external_config_names,
    )
