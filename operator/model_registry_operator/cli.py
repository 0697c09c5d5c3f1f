"""The console command: ``model-registry-operator run | render | crds | rbac``.

The upload Job's program is a distribution of its own (``model-registry-upload``, its own image)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .api.crd import all_crds
from .observability import flags as observability_flags
from .platform.capabilities import API_NAMES, PLATFORMS

# A namespace or Service name (an RFC 1123 label).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)


def crd_filename(crd: dict[str, Any]) -> str:
    spec = crd["spec"]
    return f"{spec['group']}_{spec['names']['plural']}.yaml"


def cmd_crds(args: argparse.Namespace) -> int:
    crds = all_crds()
    if not args.output_dir:
        sys.stdout.write(_dump(crds))
        return 0
    for directory in args.output_dir:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for crd in crds:
            (out / crd_filename(crd)).write_text(_dump([crd]))
    return 0


def cmd_rbac(args: argparse.Namespace) -> int:
    from .rbac import manifests, write_manifests

    if not args.output_dir:
        sys.stdout.write("---\n".join(manifests().values()))
        return 0
    write_manifests(Path(args.output_dir))
    return 0


def _api_names(value: str) -> list[str]:
    """``--api``: a comma list of API names, each checked here so a typo is an argparse error."""
    from .render.offline import api_groups

    names = [name.strip() for name in value.split(",") if name.strip()]
    try:
        api_groups(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _ingress_service(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not (_DNS_LABEL.fullmatch(namespace) and _DNS_LABEL.fullmatch(name)):
        raise argparse.ArgumentTypeError(f"{value!r} is not NAMESPACE/NAME (lower-case DNS labels)")
    return namespace, name


def cmd_render(args: argparse.Namespace) -> int:
    from .render.features import IngressService
    from .render.input import BadInput, render_input
    from .render.offline import offline_cluster

    apis = [name for names in args.api or [] for name in names]
    try:
        cluster = offline_cluster(args.platform, apis, args.domain)
    except ValueError as exc:
        print(f"error: argument --domain: {exc}", file=sys.stderr)
        return 2
    if args.ingress_service is not None:
        if not cluster.capabilities.openshift_routes:
            print(
                "error: argument --ingress-service: only the Istio gateway Routes point at it, and they need "
                "route.openshift.io, which is not served here (--platform openshift-istio, or --api openshift-routes)",
                file=sys.stderr,
            )
            return 2
        cluster = replace(cluster, ingress_service=IngressService(*args.ingress_service))
    notes: list[str] = []
    try:
        objects = render_input(args.file, cluster, notes)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(_dump(objects))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


RENDER_DESCRIPTION = """\
Print every object the operator would apply for the CRs in a file, without a
cluster: placeholders stand in for secret values and generated passwords. The
render is the one the operator makes on a cluster serving the optional APIs
given by --platform and --api (none by default: plain Kubernetes); what needs
an API not served is left out, and a note on standard error says so. Operator
settings (DEFAULT_DOMAIN, GATEWAY_DOMAIN for the HTTPRoute,
DEFAULT_AUTH_PROVIDER, ...) come from the environment, as for 'run'."""


def _render_epilog() -> str:
    platforms = "\n".join(f"  {name:<18} {', '.join(groups) or '(none)'}" for name, groups in PLATFORMS.items())
    apis = "\n".join(f"  {name:<18} {', '.join(groups)}" for name, groups in API_NAMES.items() if (name,) != groups)
    return (
        f"platforms (--platform) and the APIs they serve:\n{platforms}\n\n"
        f"API names (--api), and the API groups they stand for:\n{apis}\n"
        "  (an API group's own name is accepted too)\n\n"
        "example: model-registry-operator render -f registry.yaml --platform openshift-istio --domain apps.example.com"
    )


def _go_bool(value: str) -> bool:
    """A Go boolean flag's value: ``--leader-elect``, ``--leader-elect=true``, ``=false``."""
    lowered = value.lower()
    if lowered in {"1", "t", "true"}:
        return True
    if lowered in {"0", "f", "false"}:
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false")


def _duration(value: str) -> float:
    from .settings import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bind_address(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[::1]:PORT``, as Go's."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT or :PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


def run_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings the ``run`` flags give, by variable name (flags win over the environment)."""
    overrides: dict[str, object] = {}
    if args.health_probe_bind_address is not None:
        host, port = args.health_probe_bind_address
        overrides.update(HEALTH_PROBE_HOST=host, HEALTH_PROBE_PORT=port)
    for flag, variable in (
        ("leader_elect", "LEADER_ELECT"),
        ("leader_elect_resource_name", "LEADER_ELECTION_ID"),
        ("leader_elect_resource_namespace", "LEADER_ELECTION_NAMESPACE"),
        ("leader_elect_lease_duration", "LEADER_ELECTION_LEASE_DURATION"),
        ("leader_elect_renew_deadline", "LEADER_ELECTION_RENEW_DEADLINE"),
        ("leader_elect_retry_period", "LEADER_ELECTION_RETRY_PERIOD"),
    ):
        if getattr(args, flag) is not None:
            overrides[variable] = getattr(args, flag)
    return overrides


def cmd_run(args: argparse.Namespace) -> int:
    from .leadership import LeaderElectionError
    from .observability.endpoint import EndpointError
    from .runner import run
    from .settings import load_settings

    try:
        settings = load_settings({**observability_flags.overrides(args), **run_overrides(args)})
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run(settings, kubeconfig=args.kubeconfig)
    except (EndpointError, LeaderElectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_run_flags(run_p: argparse.ArgumentParser) -> None:
    """Upstream's flags (controller-runtime's, component-base's names for the Lease timing)."""
    run_p.add_argument(
        "--health-probe-bind-address",
        type=_bind_address,
        metavar="ADDR",
        help="where /healthz and /readyz are served: HOST:PORT or :PORT (every interface) "
        "(default: HEALTH_PROBE_HOST:HEALTH_PROBE_PORT, else :8081)",
    )
    run_p.add_argument(
        "--leader-elect",
        type=_go_bool,
        nargs="?",
        const=True,
        metavar="BOOL",
        help="only the replica holding the leader election Lease reconciles (default: LEADER_ELECT, else false)",
    )
    run_p.add_argument(
        "--leader-elect-resource-name",
        metavar="NAME",
        help="the Lease's name (default: LEADER_ELECTION_ID, else upstream's 85f368d1.opendatahub.io)",
    )
    run_p.add_argument(
        "--leader-elect-resource-namespace",
        metavar="NAMESPACE",
        help="the Lease's namespace (default: LEADER_ELECTION_NAMESPACE, else the Pod's namespace)",
    )
    for name, default in (("lease-duration", "15s"), ("renew-deadline", "10s"), ("retry-period", "2s")):
        variable = "LEADER_ELECTION_" + name.upper().replace("-", "_")
        run_p.add_argument(
            f"--leader-elect-{name}",
            type=_duration,
            metavar="DURATION",
            help=f"e.g. 15s, 1500ms (default: {variable}, else {default})",
        )


def parser() -> argparse.ArgumentParser:
    from .render.offline import DEFAULT_INGRESS_SERVICE

    p = argparse.ArgumentParser(prog="model-registry-operator", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the operator against the current cluster")
    run_p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then KUBECONFIG)")
    observability_flags.add_arguments(run_p)
    _add_run_flags(run_p)
    run_p.set_defaults(func=cmd_run)
    render_p = sub.add_parser(
        "render",
        help="print every object the operator would apply for a CR (offline)",
        description=RENDER_DESCRIPTION,
        epilog=_render_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render_p.add_argument(
        "-f", "--file", required=True, help="a ModelRegistry or ModelUploadJob YAML file ('-' for stdin)"
    )
    render_p.add_argument(
        "--platform",
        choices=list(PLATFORMS),
        default="kubernetes",
        help="the kind of cluster: the optional APIs it serves (default: %(default)s, none)",
    )
    render_p.add_argument(
        "--api",
        action="append",
        type=_api_names,
        metavar="NAMES",
        help="comma list of further optional APIs served (repeatable; names below)",
    )
    render_p.add_argument(
        "--domain",
        help="the cluster's ingress domain, which the operator reads from ingresses.config.openshift.io/cluster "
        "when config.openshift.io is served (default there: the placeholder <cluster-domain>)",
    )
    render_p.add_argument(
        "--ingress-service",
        type=_ingress_service,
        metavar="NAMESPACE/NAME",
        help="the Istio ingress gateway Service the gateway Routes point at, which the operator looks up by "
        "the istioIngress label on OpenShift (default: "
        f"{DEFAULT_INGRESS_SERVICE.namespace}/{DEFAULT_INGRESS_SERVICE.name})",
    )
    render_p.set_defaults(func=cmd_render)
    crds_p = sub.add_parser("crds", help="print the CustomResourceDefinitions")
    crds_p.add_argument("-o", "--output-dir", action="append", help="write one file per CRD here (repeatable)")
    crds_p.set_defaults(func=cmd_crds)
    rbac_p = sub.add_parser("rbac", help="print the ClusterRole and leader-election Role, from the table of kinds")
    rbac_p.add_argument("-o", "--output-dir", help="write role.yaml and leader_election_role.yaml here")
    rbac_p.set_defaults(func=cmd_rbac)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
