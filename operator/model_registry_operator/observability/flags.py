"""The command-line flags of the metrics endpoint and the log format, as upstream's manager
takes them (``--metrics-bind-address=:8443``, ``--metrics-secure=false``, ...); each one
stands for a setting's variable and wins over it.

Upstream's manager also takes controller-runtime's zap logging flags (``--zap-log-level``,
``--zap-encoder``, ``--zap-devel``, ...); they are accepted, so a Deployment written for it starts
unchanged, and mapped onto ``LOG_LEVEL`` / ``LOG_FORMAT`` where they mean the same."""

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


def _zap_level(value: str) -> str:
    """zap's level names, or a number (``-v`` style: 0 is info, above it debug, below warnings)."""
    named = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR", "dpanic": "ERROR", "panic": "ERROR"}
    if value.lower() in named:
        return named[value.lower()]
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid zap level {value!r} (debug, info, warn, error, a number)") from None
    return "DEBUG" if number > 0 else "INFO" if number == 0 else "WARNING"


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

    zap = parser.add_argument_group("upstream's zap logging flags (accepted as upstream's manager takes them)")
    zap.add_argument("--zap-log-level", type=_zap_level, metavar="LEVEL", help="debug, info, warn, error: LOG_LEVEL")
    zap.add_argument(
        "--zap-encoder", choices=["json", "console"], help="json: --log-format json; console: --log-format text"
    )
    zap.add_argument(
        "--zap-devel", nargs="?", const="true", type=_bool, metavar="BOOL", help="true: LOG_LEVEL=DEBUG (unless set)"
    )
    for ignored in ("--zap-stacktrace-level", "--zap-time-encoding"):
        zap.add_argument(ignored, metavar="VALUE", help="accepted; our log lines carry ISO timestamps and tracebacks")


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings the flags given set, by variable name (our own flags win over the zap ones)."""
    given = {env: str(getattr(args, dest)) for dest, env in FLAGS.items() if getattr(args, dest, None) is not None}
    zap: dict[str, str] = {}
    if getattr(args, "zap_devel", None) == "true":
        zap["LOG_LEVEL"] = "DEBUG"
    if getattr(args, "zap_log_level", None) is not None:
        zap["LOG_LEVEL"] = args.zap_log_level
    if getattr(args, "zap_encoder", None) is not None:
        zap["LOG_FORMAT"] = "json" if args.zap_encoder == "json" else "text"
    return {**zap, **given}
