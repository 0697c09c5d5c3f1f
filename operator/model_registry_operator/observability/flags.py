"""The command-line flags of the metrics endpoint and the log format, as upstream's manager
takes them (``--metrics-bind-address=:8443``, ``--metrics-secure=false``, ...); each one
stands for a setting's variable and wins over it."""

from __future__ import annotations

import argparse

# flag -> the setting's variable
FLAGS = {
    "metrics_bind_address": "METRICS_BIND_ADDRESS",
    "metrics_secure": "METRICS_SECURE",
    "metrics_cert_dir": "METRICS_CERT_DIR",
    "metrics_cert_name": "METRICS_CERT_NAME",
    "metrics_key_name": "METRICS_KEY_NAME",
    "log_format": "LOG_FORMAT",
}


def _bool(value: str) -> str:
    """Go's flag package booleans: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return "true"
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return "false"
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-bind-address",
        metavar="[HOST]:PORT",
        help="the address the metrics endpoint binds to; 0 turns it off (default :8443; METRICS_BIND_ADDRESS)",
    )
    parser.add_argument(
        "--metrics-secure",
        nargs="?",
        const="true",
        type=_bool,
        metavar="BOOL",
        help="serve metrics over HTTPS, to bearer tokens allowed to get /metrics; "
        "--metrics-secure=false: plain HTTP to anyone (default true; METRICS_SECURE)",
    )
    parser.add_argument(
        "--metrics-cert-dir",
        metavar="DIR",
        help="the directory of the metrics serving certificate and key; "
        "a self-signed certificate is generated when not given (METRICS_CERT_DIR)",
    )
    parser.add_argument(
        "--metrics-cert-name", metavar="FILE", help="the certificate's file name (default tls.crt; METRICS_CERT_NAME)"
    )
    parser.add_argument(
        "--metrics-key-name", metavar="FILE", help="the key's file name (default tls.key; METRICS_KEY_NAME)"
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text lines, or one JSON object per line (default text; LOG_FORMAT)",
    )


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings the flags given set, by variable name."""
    return {env: str(getattr(args, dest)) for dest, env in FLAGS.items() if getattr(args, dest, None) is not None}
