"""``python -m model_registry_devcluster up [--workdir DIR]``.

Starts a local control plane and a simulated node in the foreground (no build: run ``make k8s``
first), writes ``<workdir>/kubeconfig``, prints the matching ``export KUBECONFIG=...`` and stops
everything on Ctrl-C or SIGTERM. Each ``up`` starts from an empty cluster.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .controlplane import ControlPlane, ControlPlaneError, kubectl_binary
from .operator_image import provide_operator_image
from .simnode import DEFAULT_NODE_NAME, SimulatedNode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_registry_devcluster",
        description="Local Kubernetes control plane + simulated node for development.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the control plane and a simulated node in the foreground")
    up.add_argument(
        "--workdir",
        type=Path,
        default=Path(".local-cluster"),
        help="state, logs and kubeconfig (default: .local-cluster/ in the current directory)",
    )
    up.add_argument("--bin-dir", type=Path, default=None, help="directory of the built binaries")
    up.add_argument("--node-name", default=DEFAULT_NODE_NAME, help="name of the simulated node")
    up.add_argument(
        "--ready-delay",
        type=float,
        default=0.2,
        help="seconds before a simulated container becomes ready (default 0.2)",
    )
    up.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    workdir: Path = args.workdir.absolute()
    cp = ControlPlane(workdir, args.bin_dir)
    try:
        cp.start()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        node = SimulatedNode(cp.kubeconfig, args.node_name, ready_delay=args.ready_delay)
        node.start()
        try:
            print(f"control plane {cp.server_url} up; logs in {cp.log_dir}", file=sys.stderr)
            print(f"simulated node {args.node_name} ready; Ctrl-C to stop", file=sys.stderr)
            try:
                provide_operator_image(node.process_runner)
                print(
                    f"kubectl apply -k config/overlays/devcluster runs the operator in a Pod "
                    f"(its log: {node.process_runner.log_dir})",
                    file=sys.stderr,
                )
            except FileNotFoundError as exc:
                print(f"note: {exc}", file=sys.stderr)
            # The kubectl of the control plane's release, for the README's kubectl lines.
            print(f"export PATH={kubectl_binary(cp.bin_dir).parent}:$PATH", flush=True)
            print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
            while not stop.wait(1.0):
                if not cp.running:
                    print("error: a control-plane process exited; see the logs", file=sys.stderr)
                    return 1
        finally:
            node.stop()
    finally:
        cp.stop()
        print("stopped", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "up":
        return up(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
