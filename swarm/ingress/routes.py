"""Ingress routes: which host and path reach which service, and the proxy that routes them.

Pure: from the stack file and `swarm:ingress` to plain values the components wire in.

Routes are declared in the stack file with an `x-ingress` extension key, which `docker stack
config` and `docker stack deploy` ignore (Compose 3.7+):

    services:
      api:
        x-ingress: {host: api.example.com, path: /, port: 8000}   # or a list of such routes
    x-ingress:                                                    # routes to services that have no
      - {service: llama-8b, host: models.example.com, path: /llama}  # entry of their own (catalogue models)

`x-ingress` rather than Traefik's labels: the route is data the program validates (unknown
service, a port the service does not listen on, two routes on one host and path) and compiles
for whichever proxy it deploys; Traefik rules are a string language only Traefik fully reads,
and would tie the stack file to one proxy.

The proxy is Caddy (docs/ingress.md says why), one task per node of the ingress pool, published
on `nodePort` in host mode. `with_ingress` adds it to the stack as an ordinary service, with its
configuration as a swarm config, and attaches every routed service to one overlay network the
proxy shares with them and with nothing else. Caddy finds each service's tasks through swarm's
DNS (`tasks.<service>`), which lists a task only while it is running and healthy, and:
- re-reads that list every second: a task leaves it when swarm starts to stop it, 2 s (swarm's
  gossip delay) before it is sent SIGTERM, so no new request reaches a stopping task;
- retries a request on another task for up to RETRY_SECONDS when it cannot connect;
- sets a task aside for 10 s after it failed a request (passive health check).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm.compose import (
    ConfigSpec,
    Constraint,
    FileReference,
    Healthcheck,
    NetworkAttachment,
    NetworkSpec,
    Port,
    Problem,
    Resources,
    RestartPolicy,
    ServiceSpec,
    StackFileError,
    StackSpec,
    UpdatePolicy,
    YamlDocument,
    display_path,
    parse_duration,
    read_stack_file,
    update_order,
)
from swarm.config import INGRESS_LABEL, ClusterConfig, ConfigError, Ingress
from swarm.diagnostics import (
    WARNING,
    Collector,
    PathElement,
    Positions,
    config_problem,
    config_warning,
    format_path,
)
from swarm.model import service_name

INGRESS_KEY = "x-ingress"
ROUTE_KEYS = {"host", "path", "port"}
PROXY_SERVICE = "ingress-proxy"  # deployed as <stack>_ingress-proxy
ROUTES_NETWORK = "ingress-routes"  # the overlay network the proxy shares with routed services
PROXY_CONFIG = "ingress-proxy-config"
PROXY_CONFIG_PATH = "/etc/caddy/ingress.json"
PROXY_PORT = 80  # inside the proxy's container
# Answered by the proxy itself on every host: the load balancer's and swarm's health checks.
HEALTH_PATH = "/.swarm/ingress-health"
RETRY_SECONDS = 10
HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
PATH = re.compile(r"^(/[A-Za-z0-9._~!$&'()+,;=:@%-]+)*/?$")
SECOND = 1_000_000_000


@dataclass(frozen=True)
class Route:
    host: str
    path: str  # "/" or a prefix without a trailing slash, e.g. "/v1"
    service: str  # the stack file's service key
    port: int  # where the service's tasks listen

    @property
    def address(self) -> str:
        return self.host + ("" if self.path == "/" else self.path)


@dataclass(frozen=True)
class IngressPlan:
    ingress: Ingress
    routes: tuple[Route, ...]
    stack: StackSpec  # with the proxy, its config and network, and routed services attached
    dns_records: tuple[tuple[str, str], ...]  # (zone, record name: '@' or the host's subdomain)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted({route.host for route in self.routes}))

    def table(self, stack: str) -> list[dict[str, Any]]:
        """The routes as the stack output and the plan command show them."""
        return [
            {"host": r.host, "path": r.path, "service": service_name(stack, r.service), "port": r.port}
            for r in self.routes
        ]


# ---- routes from the stack file ------------------------------------------------------------------


def read_routes(
    document: Any, spec: StackSpec, source: str, positions: Positions | None = None
) -> tuple[tuple[Route, ...], list[Problem]]:
    """The routes the stack file declares, and warnings. Raises StackFileError listing every
    problem: an unknown service, a port the service does not listen on where that is known, two
    routes on one host and path, a malformed route. `positions` (the document's) place each
    problem at its line and column."""
    problems = Collector(source, positions=positions)
    found: list[tuple[tuple[PathElement, ...], Route]] = []  # (where it was declared, route)
    if not isinstance(document, dict):
        return (), []
    services = document.get("services") if isinstance(document.get("services"), dict) else {}
    for key, raw in services.items():
        if isinstance(raw, dict) and INGRESS_KEY in raw:
            for path, entry in _entries(raw[INGRESS_KEY], ("services", str(key), INGRESS_KEY)):
                route = _route(entry, path, str(key), services, spec, problems, service_given=False)
                if route:
                    found.append((path, route))
    if INGRESS_KEY in document:
        value = document[INGRESS_KEY]
        if not isinstance(value, list):
            problems.problem((INGRESS_KEY,), "must be a list of routes {service, host, path, port}; "
                             "a service's own routes go under services.<name>.x-ingress")
        else:
            for index, entry in enumerate(value):
                path = (INGRESS_KEY, index)
                route = _route(entry, path, None, services, spec, problems, service_given=True)
                if route:
                    found.append((path, route))

    claimed: dict[tuple[str, str], tuple[PathElement, ...]] = {}
    for path, route in found:
        first = claimed.setdefault((route.host, route.path), path)
        if first != path:
            problems.problem(path, f"{route.host} {route.path} is already routed by {format_path(first)}: "
                             "give each route its own host or path")
    if problems.problems:
        raise StackFileError(problems.problems)
    for service in sorted({route.service for _, route in found}):
        check = spec.services[service].healthcheck
        if check is None or check.disable or check.test == ("NONE",):
            problems.warn(("services", service), f"routed by {INGRESS_KEY} but has no healthcheck: swarm sends it "
                          "traffic as soon as a task starts and cannot roll back a release that does not answer; add one")
    # Longest path first within a host: the proxy tries routes in order.
    routes = sorted((route for _, route in found), key=lambda r: (r.host, -len(r.path), r.path))
    return tuple(routes), problems.warnings


def _entries(value: Any, path: tuple[PathElement, ...]) -> list[tuple[tuple[PathElement, ...], Any]]:
    if isinstance(value, list):
        return [((*path, index), entry) for index, entry in enumerate(value)]
    return [(path, value)]


def _route(entry: Any, path: tuple[PathElement, ...], service: str | None, services: Mapping, spec: StackSpec,
           problems: Collector, *, service_given: bool) -> Route | None:
    def problem(where: str, message: str, key: bool = False) -> None:
        problems.problem((*path, where) if where else path, message, key=key)

    keys = ROUTE_KEYS | ({"service"} if service_given else set())
    if not isinstance(entry, dict):
        problem("", "must be a mapping such as {host: api.example.com, path: /, port: 8000}")
        return None
    before = len(problems.problems)
    for unknown in sorted(set(entry) - keys, key=str):
        problem(str(unknown), f"unknown key; a route takes {', '.join(sorted(keys))}", key=True)
    if service_given:
        service = entry.get("service")
        if not isinstance(service, str) or service not in spec.services:
            problem("service", f"{service!r} is not a service of this stack; its services are {', '.join(spec.services)}")
            return None
    assert service is not None
    if service not in spec.services:  # a hand-written entry the loader rejected: reported there
        return None
    host = entry.get("host")
    if not isinstance(host, str) or not HOST_NAME.match(host):
        problem("host", f"{host!r} is not a host name; use a lowercase DNS name such as api.example.com (no scheme, no port)")
    route_path = entry.get("path", "/")
    if not isinstance(route_path, str) or not route_path.startswith("/") or not PATH.match(route_path):
        problem("path", f"{route_path!r} is not a path prefix; use one like / or /v1 (no query, no wildcard)")
    else:
        route_path = route_path.rstrip("/") or "/"
        if (route_path + "/").startswith(HEALTH_PATH.rsplit("/", 1)[0] + "/"):
            problem("path", f"{HEALTH_PATH} is where the proxy answers health checks; use another path")

    known = _listening_ports(spec.services[service], services.get(service))
    port = entry.get("port")
    if port is None:
        if len(known) == 1:
            port = next(iter(known))
        else:
            listed = f"it declares {', '.join(map(str, sorted(known)))}" if known else "its ports are not declared"
            problem("port", f"is required: the port service {service} listens on ({listed})")
    elif not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problem("port", f"{port!r} is not a port number")
    elif known and port not in known:
        problem("port", f"service {service} does not listen on {port}: it declares {', '.join(map(str, sorted(known)))} "
                "(ports, expose); route to one of those or declare the port")
    if len(problems.problems) > before:
        return None
    return Route(host, route_path, service, int(port))


def _listening_ports(spec: ServiceSpec, raw: Any) -> set[int]:
    """The ports a service is known to listen on: its published ports' targets and its `expose`
    entries (which swarm ignores, but which say where the service listens). Empty: unknown."""
    ports = {port.target for port in spec.ports if port.protocol == "tcp"}
    expose = raw.get("expose") if isinstance(raw, dict) else None
    for item in expose if isinstance(expose, list) else []:
        text = str(item).split("/")[0]
        if "-" in text:
            first, _, last = text.partition("-")
            if first.isdigit() and last.isdigit():
                ports.update(range(int(first), int(last) + 1))
        elif text.isdigit():
            ports.add(int(text))
    return ports


# ---- the plan: routes checked against swarm:ingress, the proxy added to the stack ----------------


def plan_ingress(
    config: ClusterConfig, spec: StackSpec, document: YamlDocument | None = None
) -> tuple[StackSpec, IngressPlan | None]:
    """The stack to deploy and its ingress: `spec` with the proxy added, or unchanged with no
    plan when `swarm:ingress` is not set (declared routes are then only warned about).
    `document` is the stack file as read (read again from config.stack_file when not given).
    Raises StackFileError for bad routes and ConfigError for routes `swarm:ingress` cannot serve."""
    source = display_path(config.stack_file)
    if document is None:
        document = read_stack_file(config.stack_file)
    routes, warnings = read_routes(document.value, spec, source, document.positions)
    ingress = config.ingress
    if ingress is None:
        if routes:
            warnings.append(Problem(source, (INGRESS_KEY,), f"{len(routes)} routes are declared but swarm:ingress is not "
                                    "set: nothing is routed (see docs/ingress.md)", WARNING))
        return dataclasses.replace(spec, warnings=[*spec.warnings, *warnings]), None
    problems = []
    records = []
    for host in sorted({route.host for route in routes}):
        zone = ingress.zone_of(host)
        if zone is not None:
            records.append((zone, "@" if host == zone else host.removesuffix("." + zone)))
        elif ingress.certificate == "letsEncrypt":
            problems.append(config_problem(("swarm:ingress", "domains"), f"{host} (routed in {config.stack_file.name}) is in none of "
                                          f"{', '.join(ingress.domains)}: a Let's Encrypt certificate from DigitalOcean needs "
                                          "the host's domain on DigitalOcean DNS; add its domain or fix the host"))
        else:
            warnings.append(config_warning(("swarm:ingress", "domains"), f"{host} is in none of {', '.join(ingress.domains)}: no "
                                           "DNS record is created for it; point it at the load balancer's address (stack "
                                           "output loadBalancerAddress) yourself"))
    if problems:
        raise ConfigError(f"Pulumi.{config.stack}.yaml", problems)
    if PROXY_SERVICE in spec.services or ROUTES_NETWORK in spec.networks or PROXY_CONFIG in spec.configs:
        raise StackFileError([Problem(source, ("services",), f"{PROXY_SERVICE}, the network {ROUTES_NETWORK} and the config "
                                      f"{PROXY_CONFIG} are the program's own with swarm:ingress: rename yours")])
    if not routes:
        warnings.append(Problem(source, (), f"swarm:ingress is set but no service has {INGRESS_KEY}: the proxy answers 404 "
                                "to everything", WARNING))
    stack = with_ingress(spec, ingress, routes, config.stack)
    stack = dataclasses.replace(stack, warnings=[*stack.warnings, *warnings])
    return stack, IngressPlan(ingress, routes, stack, tuple(records))


def with_ingress(spec: StackSpec, ingress: Ingress, routes: tuple[Route, ...], stack: str) -> StackSpec:
    """`spec` with the proxy service, its config and the routes network added, and every routed
    service attached to that network and rolled back automatically when a release fails."""
    routed = {route.service for route in routes}
    services = {key: (_routed(service) if key in routed else service) for key, service in spec.services.items()}
    services[PROXY_SERVICE] = proxy_service(ingress)
    content = json.dumps(proxy_config(routes, stack), indent=1, sort_keys=True).encode()
    config = ConfigSpec(key=PROXY_CONFIG, external=False, file=None, content=content)
    network = NetworkSpec(key=ROUTES_NETWORK, name=f"{stack}_{ROUTES_NETWORK}", external=False)
    return dataclasses.replace(
        spec,
        services=services,
        networks={**spec.networks, ROUTES_NETWORK: network},
        configs={**spec.configs, PROXY_CONFIG: config},
    )


def _routed(service: ServiceSpec) -> ServiceSpec:
    """A routed service: on the routes network; a failed release rolls back by itself (swarm's
    default is to pause), and the rollback keeps the update's order, so it drops no request either
    (swarm's default rollback is stop-first)."""
    networks = service.networks
    if not any(attachment.network == ROUTES_NETWORK for attachment in networks):
        networks = (*networks, NetworkAttachment(ROUTES_NETWORK))
    update = service.update_config or UpdatePolicy()
    order = update_order(service)
    if update.failure_action is None:
        update = dataclasses.replace(update, failure_action="rollback")
    rollback = service.rollback_config or UpdatePolicy()
    if rollback.order is None:
        rollback = dataclasses.replace(rollback, order=order)
    return dataclasses.replace(service, networks=networks, update_config=update, rollback_config=rollback)


def proxy_service(ingress: Ingress) -> ServiceSpec:
    """One proxy task on each node of the ingress pool, listening on the node's nodePort."""
    label, value = INGRESS_LABEL
    return ServiceSpec(
        name=PROXY_SERVICE,
        image=ingress.image,
        command=("caddy", "run", "--config", PROXY_CONFIG_PATH),
        configs=(FileReference(PROXY_CONFIG, PROXY_CONFIG_PATH),),
        networks=(NetworkAttachment(ROUTES_NETWORK),),
        # Host mode: the load balancer reaches the proxy on the node it health-checks, with no
        # second hop through swarm's routing mesh.
        ports=(Port(PROXY_PORT, ingress.node_port, "tcp", "host"),),
        healthcheck=Healthcheck(
            test=("CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PROXY_PORT}{HEALTH_PATH}"),
            interval=5 * SECOND, timeout=3 * SECOND, retries=3, start_period=10 * SECOND,
        ),
        mode="global",
        replicas=None,
        constraints=(Constraint(f"node.labels.{label}", "==", value),),
        reservations=Resources(nano_cpus=SECOND // 10, memory_bytes=64 * 1024**2),
        limits=Resources(memory_bytes=512 * 1024**2),
        restart_policy=RestartPolicy("any", delay=2 * SECOND),
        # The host-mode port makes it stop-first: one node at a time, each back and healthy
        # before the next, while the load balancer sends to the others.
        update_config=UpdatePolicy(parallelism=1, delay=10 * SECOND, failure_action="rollback",
                                   monitor=15 * SECOND, order="stop-first"),
        # Caddy finishes the requests in flight on SIGTERM (apps.http.grace_period).
        stop_grace_period=parse_duration("15s"),
    )


def proxy_config(routes: tuple[Route, ...], stack: str) -> dict[str, Any]:
    """Caddy's JSON configuration for `routes` (ordered: the first matching route wins)."""
    handlers = [
        {"match": [{"path": [HEALTH_PATH]}], "handle": [_respond(200, "ok\n")], "terminal": True},
        *({"match": [_matcher(route)], "handle": [_reverse_proxy(route, stack)], "terminal": True} for route in routes),
        {"handle": [_respond(404, "no route for this host and path\n")]},
    ]
    return {
        "admin": {"disabled": True},
        "apps": {
            "http": {
                "grace_period": "10s",
                "servers": {
                    "ingress": {
                        "listen": [f":{PROXY_PORT}"],
                        "automatic_https": {"disable": True},  # the load balancer terminates TLS
                        # The load balancer connects from the VPC: keep its X-Forwarded-For.
                        "trusted_proxies": {"source": "static", "ranges": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]},
                        "routes": handlers,
                    }
                },
            }
        },
    }


def _matcher(route: Route) -> dict[str, Any]:
    if route.path == "/":
        return {"host": [route.host]}
    return {"host": [route.host], "path": [route.path, route.path + "/*"]}


def _reverse_proxy(route: Route, stack: str) -> dict[str, Any]:
    return {
        "handler": "reverse_proxy",
        "dynamic_upstreams": {
            "source": "a",
            "name": f"tasks.{service_name(stack, route.service)}",
            "port": str(route.port),
            "refresh": "1s",
        },
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            "try_duration": f"{RETRY_SECONDS}s",
            "try_interval": "250ms",
        },
        "health_checks": {"passive": {"fail_duration": "10s", "max_fails": 1}},
        "transport": {"protocol": "http", "dial_timeout": "2s"},
    }


def _respond(status: int, body: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status, "body": body}
