"""The console command: ``model-registry-operator run | render | crds``.

The upload Job's program is a distribution of its own (``model-registry-upload``, its own image)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .api.crd import all_crds


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


def cmd_render(args: argparse.Namespace) -> int:
    from .render.input import BadInput, render_input

    try:
        objects = render_input(args.file)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(_dump(objects))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run
    from .settings import load_settings

    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run(settings, kubeconfig=args.kubeconfig)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="model-registry-operator", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the operator against the current cluster")
    run_p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then KUBECONFIG)")
    run_p.set_defaults(func=cmd_run)
    render_p = sub.add_parser("render", help="print every object the operator would apply for a CR (offline)")
    render_p.add_argument(
        "-f", "--file", required=True, help="a ModelRegistry or ModelUploadJob YAML file ('-' for stdin)"
    )
    render_p.set_defaults(func=cmd_render)
    crds_p = sub.add_parser("crds", help="print the CustomResourceDefinitions")
    crds_p.add_argument("-o", "--output-dir", action="append", help="write one file per CRD here (repeatable)")
    crds_p.set_defaults(func=cmd_crds)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
