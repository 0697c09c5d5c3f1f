"""Wait, at start-up, until the API server serves our own resources.

An operator deployed together with its CRDs (``kubectl apply -k``) starts while the API server
is still setting up their storage: the first LIST answers 404 (not Established yet) or 429
"storage is (re)initializing". kopf retries those, but logs each attempt at ERROR, so every
fresh install began with a scary error. Waiting here, before kopf starts its watches, keeps
that out of the log; a CRD that is not installed at all is not waited for (kopf watches it
once it appears).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..kube import ApiError, Kube, lookup

log = logging.getLogger(__name__)

CRD = lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
NOT_SERVED_YET = (404, 429)  # not Established yet / storage (re)initializing
SERVED_TIMEOUT_SECONDS = 60.0
RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class ServedResource:
    group: str
    version: str
    plural: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    def list_path(self, namespace: str | None) -> str:
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"/apis/{self.group}/{self.version}{where}/{self.plural}"


def retry_after(exc: ApiError) -> float:
    """The API server's advice (``details.retryAfterSeconds``), bounded; else a short pause."""
    advised = (exc.body.get("details") or {}).get("retryAfterSeconds")
    return min(float(advised), 5.0) if isinstance(advised, int | float) and advised > 0 else RETRY_SECONDS


async def wait_until_served(
    kube: Kube,
    resources: list[ServedResource],
    namespace: str | None = None,
    patience: float = SERVED_TIMEOUT_SECONDS,
) -> list[ServedResource]:
    """Return once every installed resource in ``resources`` answers a LIST; the ones still not
    served after ``patience`` seconds are returned (and logged) and left to kopf's own retries."""
    deadline = time.monotonic() + patience
    late: list[ServedResource] = []
    for resource in resources:
        try:
            if await kube.get(CRD, None, resource.crd_name) is None:
                log.warning("CRD %s is not installed; its resources are handled once it is", resource.crd_name)
                continue
        except ApiError as exc:  # no right to read CRDs: go by the LIST alone
            log.debug("cannot read CRD %s: %s", resource.crd_name, exc)
        said = False
        while True:
            try:
                await kube.request("GET", resource.list_path(namespace), [("limit", "1")])
                break
            except ApiError as exc:
                if exc.status not in NOT_SERVED_YET:
                    break  # anything else (forbidden, ...) is kopf's to report
                if time.monotonic() >= deadline:
                    log.warning("%s still not served after %.0f s: %s", resource.crd_name, patience, exc)
                    late.append(resource)
                    break
                if not said:
                    log.info("waiting for the API server to serve %s: %s", resource.crd_name, exc.message)
                    said = True
                await asyncio.sleep(retry_after(exc))
        if said and resource not in late:
            log.info("%s is served", resource.crd_name)
    return late
