"""Who may read ``/metrics``: controller-runtime's secure metrics filter
(``filters.WithAuthenticationAndAuthorization``), in Python.

The bearer token is checked with a TokenReview, its user with a SubjectAccessReview for ``get``
on the non-resource URL ``/metrics`` (what the ``metrics-reader`` ClusterRole grants), both by
the operator's ServiceAccount (which holds ``create`` on both reviews). No token or a token the
API server does not accept: 401; a user not allowed: 403; the API server unreachable: 500.
Answers are cached briefly, by the token's digest (the token itself is kept nowhere), so a
Prometheus scraping every few seconds costs two API calls a minute, and a revoked permission
stops working within :data:`ALLOW_SECONDS`.

Written by hand: kube-rbac-proxy does this as a sidecar (a second image to ship and patch); the
kubernetes client has the two review calls but no filter around them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions

from ..kube import ApiError, Kube

log = logging.getLogger(__name__)

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 (a path, not a secret)
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
# How long a review's answer is reused: allowed longer than refused, so that a scraper whose
# access was just granted does not wait long (controller-runtime: 1 min authn, 5 min / 30 s authz).
ALLOW_SECONDS = 60.0
DENY_SECONDS = 10.0
MAX_CACHED = 1024


@dataclass(frozen=True)
class Decision:
    status: int  # 200, 401, 403 or 500
    message: str

    @property
    def allowed(self) -> bool:
        return self.status == 200


class Authorizer:
    """TokenReview + SubjectAccessReview of a request's bearer token for ``get`` on ``path``."""

    def __init__(self, kube: Kube, path: str = "/metrics") -> None:
        self.kube = kube
        self.path = path
        self._cache: dict[str, tuple[float, Decision]] = {}

    async def check(self, authorization: str | None) -> Decision:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Decision(401, "Unauthorized: a bearer token is required")
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            decision = await self._review(token)
        except (ApiError, OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
            # Not cached: the next scrape asks again.
            log.warning("metrics: the API server could not review a scraper's token: %s", exc)
            return Decision(500, "Internal Server Error: the token could not be reviewed")
        self._remember(digest, decision, now)
        return decision

    async def _review(self, token: str) -> Decision:
        review: dict[str, Any] = await self.kube.request(
            "POST",
            TOKEN_REVIEWS,
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return Decision(401, "Unauthorized: the token was not accepted")
        user = status.get("user") or {}
        spec: dict[str, Any] = {
            "user": user.get("username", ""),
            "groups": user.get("groups") or [],
            "nonResourceAttributes": {"path": self.path, "verb": "get"},
        }
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        access: dict[str, Any] = await self.kube.request(
            "POST",
            SUBJECT_ACCESS_REVIEWS,
            body={"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        if not (access.get("status") or {}).get("allowed"):
            who = spec["user"]
            return Decision(403, f'Forbidden: user "{who}" may not get the non-resource URL {self.path}')
        return Decision(200, "")

    def _remember(self, digest: str, decision: Decision, now: float) -> None:
        if len(self._cache) >= MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            while len(self._cache) >= MAX_CACHED:  # all still fresh: drop the oldest
                self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = (now + (ALLOW_SECONDS if decision.allowed else DENY_SECONDS), decision)
