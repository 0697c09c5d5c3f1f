"""Progress in the ModelUploadJob's status, written by the upload program in its Pod.

The operator renders ``MODEL_UPLOAD_JOB_NAME`` / ``MODEL_UPLOAD_JOB_NAMESPACE`` into the Job and
grants the Pod's service account ``patch`` on that one ModelUploadJob's ``status``. The program
then merge-patches ``status.progress`` with the in-cluster credentials a kubelet gives every Pod
(``KUBERNETES_SERVICE_HOST`` / ``_PORT`` and the projected service account token, read again on
each report because the kubelet rotates it). Reporting is best effort: a failed report is logged
once and never fails the upload. Outside a cluster (no token, no variables) nothing is reported.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import requests

from model_registry_upload_contract import GROUP, JOB_NAME_ENV, JOB_NAMESPACE_ENV, PLURAL, STATUS_FIELD_MANAGER, VERSION

from .httputil import error_text
from .progress import ProgressSnapshot

log = logging.getLogger(__name__)

FIELD_MANAGER = STATUS_FIELD_MANAGER
NAME_ENV = JOB_NAME_ENV
NAMESPACE_ENV = JOB_NAMESPACE_ENV
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT = 5.0


class StatusReporter:
    """PATCHes ``status.progress`` of one ModelUploadJob through the API server."""

    def __init__(self, api_url: str, namespace: str, name: str, token_path: Path, ca_path: Path | None) -> None:
        self.url = f"{api_url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        self.target = f"{namespace}/{name}"
        self.token_path = token_path
        self.verify: str | bool = str(ca_path) if ca_path is not None else True
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], sa_dir: Path = SERVICE_ACCOUNT_DIR) -> StatusReporter | None:
        name, namespace = environ.get(NAME_ENV), environ.get(NAMESPACE_ENV)
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
        token = sa_dir / "token"
        if not (name and namespace and host and port):
            return None
        if not token.is_file():
            log.info("no service account token at %s: progress is reported in the log only", token)
            return None
        ca = sa_dir / "ca.crt"
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", namespace, name, token, ca if ca.is_file() else None)

    def report(self, snapshot: ProgressSnapshot) -> bool:
        """Send one update; True when the API server took it."""
        with self._lock:  # the progress thread and the final report never interleave
            try:
                token = self.token_path.read_text().strip()
                resp = self._session.patch(
                    self.url,
                    params={"fieldManager": FIELD_MANAGER},
                    data=json.dumps(snapshot.status()),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"},
                    verify=self.verify,
                    timeout=TIMEOUT,
                )
                ok = resp.status_code < 300
                problem = f"HTTP {resp.status_code}: {error_text(resp)}"
            except (OSError, requests.RequestException) as exc:
                ok, problem = False, f"{exc.__class__.__name__}: {exc}"
            if not ok and not self._failed:
                log.warning(
                    "could not report progress in the status of ModelUploadJob %s (%s); progress stays in this log",
                    self.target,
                    problem,
                )
            self._failed = self._failed or not ok
            return ok
