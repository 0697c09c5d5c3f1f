"""``model-registry-operator render --platform / --api``: the offline render as on a cluster serving
those optional APIs. The command's ``main()`` (the console command itself, as a subprocess, for
its help and usage errors) on the repository's samples (built with ``kubectl kustomize``, as a user
applies them) and on a CR per security mode; what each mode adds is the README's table, written out
here independently of the templates."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from model_registry_operator.cli import main
from model_registry_operator.platform.capabilities import API_NAMES, PLATFORMS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "config" / "samples"
COMMAND = Path(sys.executable).parent / "model-registry-operator"
MR_HEAD = {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry"}
OPENSHIFT_PLATFORMS = {"openshift", "openshift-istio"}
ISTIO_PLATFORMS = {"istio", "openshift-istio"}
ISTIO_GROUPS = "networking.istio.io, security.istio.io, authorino.kuadrant.io"
Ref = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name

# The settings the operator would have: none from the environment of whoever runs the tests.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("DEFAULT_", "GATEWAY_", "HTTPROUTE_", "CREATE_AUTH", "RELATED_IMAGE_"))
}


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**CLEAN_ENV, **(env or {})},
    )


def render(text: str, *args: str, env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """(the objects rendered, standard error) of ``render -f FILE ARGS`` with ``text`` in FILE, through
    the command's ``main()`` (a subprocess per render would take most of the suite's time)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cr.yaml"
        path.write_text(text)
        with (
            mock.patch.dict(os.environ, {**CLEAN_ENV, **(env or {})}, clear=True),  # the operator's settings
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            code = main(["render", "-f", str(path), *args])
    assert code == 0, stderr.getvalue()
    return [doc for doc in yaml.safe_load_all(stdout.getvalue()) if doc], stderr.getvalue()


def refs(objects: list[dict[str, Any]]) -> set[Ref]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects}


def expected_extras(registry: dict[str, Any], platform: str) -> set[Ref]:
    """What the platform's APIs add to a registry's objects on plain Kubernetes (the README's table)."""
    name = registry["metadata"]["name"]
    namespace = registry["metadata"].get("namespace", "default")
    spec = registry["spec"]
    openshift, istio = platform in OPENSHIFT_PLATFORMS, platform in ISTIO_PLATFORMS
    extras: set[Ref] = set()
    if openshift:
        extras |= {("Group", "", f"{name}-users"), ("RoleBinding", namespace, f"{name}-users")}
        if (spec.get("rest") or {}).get("serviceRoute") == "enabled":
            extras.add(("Route", namespace, f"{name}-http"))
        proxy = spec.get("kubeRBACProxy", spec.get("oauthProxy"))
        if proxy is not None and proxy.get("serviceRoute", "enabled") == "enabled":
            extras |= {("Route", namespace, f"{name}-https"), ("NetworkPolicy", namespace, f"{name}-https-route")}
    if istio and "istio" in spec:
        extras |= {
            ("VirtualService", namespace, name),
            ("DestinationRule", namespace, name),
            ("AuthorizationPolicy", namespace, f"{name}-authorino"),
            ("AuthConfig", namespace, name),
        }
        gateway = spec["istio"].get("gateway")
        if gateway is not None:
            extras.add(("Gateway", namespace, name))
            servers = {"rest": gateway.get("rest") or {}, "grpc": gateway.get("grpc")}
            for key, server in servers.items():
                if openshift and server is not None and server.get("gatewayRoute", "enabled") == "enabled":
                    extras.add(("Route", "istio-system", f"{namespace}-{name}-{key}"))
    return extras


def kustomize(sample: Path) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to build the kustomize samples (the integration tests use it too)"
    return subprocess.run(
        [kubectl, "kustomize", str(sample)], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def registries_of(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc and doc.get("kind") == "ModelRegistry"]


SAMPLE_DIRS = sorted(
    str(p.parent.relative_to(SAMPLES))
    for p in SAMPLES.glob("**/kustomization.yaml")
    if "components" not in p.parts and "upload" not in p.parts
)


def test_every_sample_directory_is_covered() -> None:
    assert {"istio/postgres", "oauth/mysql", "kube-rbac-proxy/postgres", "postgres-auto"} <= set(SAMPLE_DIRS)


@pytest.fixture(scope="module")
def built_samples() -> dict[str, str]:
    return {sample: kustomize(SAMPLES / sample) for sample in SAMPLE_DIRS}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("sample", SAMPLE_DIRS)
def test_each_platform_renders_the_objects_of_each_sample(
    built_samples: dict[str, str], sample: str, platform: str
) -> None:
    text = built_samples[sample]
    (registry,) = registries_of(text)
    plain, _ = render(text)
    objects, stderr = render(text, "--platform", platform)
    assert refs(objects) - refs(plain) == expected_extras(registry, platform)
    assert refs(plain) <= refs(objects)  # what plain Kubernetes gets is there on every platform
    left_out = "istio" in registry["spec"] and platform not in ISTIO_PLATFORMS
    assert (f"left out what needs {ISTIO_GROUPS}" in stderr) == left_out, stderr


def registry(name: str, **spec: Any) -> dict[str, Any]:
    return {
        **MR_HEAD,
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"rest": {}, "postgres": {"generateDeployment": True}, **spec},
    }


MODES = {
    "none": registry("plain", rest={"serviceRoute": "enabled"}),
    "kube-rbac-proxy": registry("krp", kubeRBACProxy={}),
    "oauth-proxy": registry("oauth", oauthProxy={"serviceRoute": "disabled"}),
    "istio": registry("mesh", istio={"authProvider": "odh-auth"}),
    "istio-gateway": registry(
        "gw",
        istio={
            "authProvider": "odh-auth",
            "gateway": {
                "domain": "apps.example.test",
                "rest": {"tls": {"mode": "SIMPLE", "credentialName": "rest-cert"}},
                "grpc": {},
            },
        },
    ),
}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_platform_renders_the_objects_of_each_security_mode(mode: str, platform: str) -> None:
    cr = MODES[mode]
    plain, _ = render(yaml.safe_dump(cr))
    objects, _ = render(yaml.safe_dump(cr), "--platform", platform)
    assert refs(objects) - refs(plain) == expected_extras(cr, platform)


def test_the_istio_objects_are_those_of_the_live_reconcile() -> None:
    objects, stderr = render(yaml.safe_dump(MODES["istio-gateway"]), "--platform", "openshift-istio")
    assert stderr == ""
    by_ref = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    policy = by_ref[("AuthorizationPolicy", "gw-authorino")]
    assert (policy["spec"]["action"], policy["spec"]["provider"]["name"]) == ("CUSTOM", "odh-auth")
    assert "gw-rest.apps.example.test" in by_ref[("AuthConfig", "gw")]["spec"]["hosts"]
    assert by_ref[("Gateway", "gw")]["spec"]["servers"][0]["port"] == {
        "number": 443,
        "name": "https-rest",
        "protocol": "HTTPS",
    }
    route = by_ref[("Route", "team-gw-rest")]
    assert route["metadata"]["namespace"] == "istio-system"
    assert (route["spec"]["host"], route["spec"]["to"]["name"]) == ("gw-rest.apps.example.test", "istio-ingressgateway")
    pod = by_ref[("Deployment", "gw")]["spec"]["template"]["metadata"]
    assert pod["labels"]["sidecar.istio.io/inject"] == "true"


def test_the_ingress_service_of_the_gateway_routes_can_be_given() -> None:
    text = yaml.safe_dump(MODES["istio-gateway"])
    objects, _ = render(text, "--platform", "openshift-istio", "--ingress-service", "mesh-ingress/my-gateway")
    routes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Route"}
    assert set(routes) == {"team-gw-rest", "team-gw-grpc"}
    for route in routes.values():
        assert (route["metadata"]["namespace"], route["spec"]["to"]["name"]) == ("mesh-ingress", "my-gateway")


def test_api_names_compose_with_a_platform_and_api_groups_are_names_too() -> None:
    text = yaml.safe_dump(MODES["istio-gateway"])
    preset, _ = render(text, "--platform", "openshift-istio")
    composed, _ = render(text, "--platform", "openshift", "--api", "istio,authorino")
    groups, _ = render(
        text, "--api", "openshift", "--api", "networking.istio.io,security.istio.io,authorino.kuadrant.io"
    )
    assert preset == composed == groups
    default, _ = render(text)
    kubernetes, _ = render(text, "--platform", "kubernetes", "--api", "")
    assert default == kubernetes


def test_an_istio_registry_without_the_istio_apis_says_what_it_left_out() -> None:
    objects, stderr = render(yaml.safe_dump(MODES["istio"]), "--api", "istio")  # Authorino missing
    assert not {"VirtualService", "AuthConfig"} & {o["kind"] for o in objects}
    assert stderr == (
        "note: ModelRegistry mesh: left out what needs authorino.kuadrant.io (not served here: --platform / --api)\n"
    )


def test_the_gateway_api_renders_the_httproute_where_gateway_domain_is_set() -> None:
    text = yaml.safe_dump(MODES["kube-rbac-proxy"])
    gateway_env = {"GATEWAY_DOMAIN": "gw.example.test"}
    objects, stderr = render(text, "--api", "gateway", env=gateway_env)
    assert stderr == ""
    added = refs(objects) - refs(render(text)[0])
    assert added == {
        ("HTTPRoute", "redhat-ods-applications", "model-registry-krp"),
        ("ReferenceGrant", "team", "model-registry-krp"),
    }
    without_api, stderr = render(text, env=gateway_env)
    assert "HTTPRoute" not in {o["kind"] for o in without_api}
    assert "left out what needs gateway.networking.k8s.io" in stderr
    assert render(text, "--api", "gateway")[0] == render(text)[0]  # no GATEWAY_DOMAIN: the mode is off


def route_host(objects: list[dict[str, Any]], name: str) -> str:
    (route,) = (o for o in objects if o["kind"] == "Route" and o["metadata"]["name"] == name)
    host: str = route["spec"]["host"]
    return host


def test_the_cluster_domain_is_an_option_or_a_placeholder() -> None:
    text = yaml.safe_dump(MODES["kube-rbac-proxy"])
    objects, _ = render(text, "--platform", "openshift", "--domain", "apps.example.org")
    assert route_host(objects, "krp-https") == "krp-rest.apps.example.org"
    objects, _ = render(text, "--platform", "openshift")
    assert route_host(objects, "krp-https") == "krp-rest.<cluster-domain>"
    # DEFAULT_DOMAIN comes before the cluster's domain, as in the operator.
    objects, _ = render(
        text, "--platform", "openshift", "--domain", "apps.example.org", env={"DEFAULT_DOMAIN": "d.test"}
    )
    assert route_host(objects, "krp-https") == "krp-rest.d.test"


def test_render_help_documents_the_platforms_and_api_names() -> None:
    result = run("render", "--help")
    assert result.returncode == 0, result.stderr
    for text in ["--platform", "--api", "--domain", "--ingress-service", *PLATFORMS, *API_NAMES]:
        assert text in result.stdout, text


def assert_usage_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


def test_an_unknown_api_names_the_parameter_and_lists_the_valid_names() -> None:
    result = run("render", "-f", "-", "--api", "istio,openshfit", stdin=yaml.safe_dump(MODES["istio"]))
    assert_usage_error(result, "argument --api: unknown API 'openshfit'; valid names: ", *API_NAMES)
    assert "'istio'" not in result.stderr


def test_an_unknown_platform_names_the_parameter_and_lists_the_valid_ones() -> None:
    result = run("render", "-f", "-", "--platform", "eks", stdin=yaml.safe_dump(MODES["istio"]))
    assert_usage_error(result, "argument --platform: invalid choice: 'eks'", *(repr(p) for p in PLATFORMS))


def test_a_domain_where_the_operator_reads_none_is_refused() -> None:
    result = run("render", "-f", "-", "--platform", "istio", "--domain", "a.test", stdin=yaml.safe_dump(MODES["istio"]))
    assert_usage_error(result, "error: argument --domain:", "config.openshift.io", "--api openshift-config")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--platform", "openshift-istio", "--ingress-service", "istio-system"], "is not NAMESPACE/NAME"),
        (["--platform", "openshift-istio", "--ingress-service", "Mesh/gw"], "is not NAMESPACE/NAME"),
        (["--platform", "istio", "--ingress-service", "mesh/gw"], "need route.openshift.io"),
    ],
)
def test_a_bad_ingress_service_is_refused(args: list[str], expected: str) -> None:
    result = run("render", "-f", "-", *args, stdin=yaml.safe_dump(MODES["istio"]))
    assert_usage_error(result, "argument --ingress-service", expected)
