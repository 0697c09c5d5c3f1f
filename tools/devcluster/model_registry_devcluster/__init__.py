"""A local Kubernetes for development and tests: a real control plane plus a simulated node.

- :class:`ControlPlane`: etcd, kube-apiserver and kube-controller-manager built from source by
  ``hack/build-k8s.sh`` (``make k8s``), all on 127.0.0.1.
- :class:`SimulatedNode`: binds Pods and writes their status like a kubelet would.
- ``python -m model_registry_devcluster up``: both in the foreground.
"""

from .controlplane import DEFAULT_K8S_VERSION, ControlPlane, ControlPlaneError, default_bin_dir
from .simnode import (
    ContainerBehaviour,
    ContainerContext,
    ContainerExit,
    ContainerRunner,
    IPAllocator,
    RunningContainer,
    SimulatedNode,
    image_policy,
)

__all__ = [
    "DEFAULT_K8S_VERSION",
    "ContainerBehaviour",
    "ContainerContext",
    "ContainerExit",
    "ContainerRunner",
    "ControlPlane",
    "ControlPlaneError",
    "IPAllocator",
    "RunningContainer",
    "SimulatedNode",
    "default_bin_dir",
    "image_policy",
]
