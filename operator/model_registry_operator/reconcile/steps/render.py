"""Step 2: the objects the registry's spec asks for (pure rendering; reused while its inputs stay).

A template that cannot hold a value of the spec (one the schema should have refused) is a
:class:`ConfigurationError` naming that field; any other render failure is a bug
(``ReconcileError``, its traceback in the log).
"""

from __future__ import annotations

from typing import Any

from ...api.modelregistry import ModelRegistrySpec
from ...kube import Obj
from ...render.engine import RenderError
from ...render.features import Feature, ModeConfigurationError
from ...render.modelregistry import RegistryRef, RenderInputs, render_features, render_model_registry
from ..errors import ConfigurationError, value_problems
from . import Env, RegistryState, unpack


def render(
    env: Env,
    state: RegistryState,
    registry: RegistryRef,
    spec: ModelRegistrySpec,
    inputs: RenderInputs,
    raw_spec: Any,
) -> tuple[list[Obj], Feature, Any]:
    """Render, or reuse what was applied last when nothing the rendering depends on changed:
    the objects, the features (what the status watches for) and the key of the inputs."""
    capabilities = env.capabilities()
    render_key = (registry, spec, inputs, capabilities)
    applied = state.applied
    if applied is not None and applied.render_key == render_key:
        return [unpack(packed) for packed in applied.desired.values()], applied.features, render_key
    try:
        features = render_features(registry, spec, env.settings, capabilities, inputs)
        desired = render_model_registry(registry, spec, env.settings, capabilities, inputs, features)
    except ModeConfigurationError as exc:
        raise ConfigurationError(str(exc)) from None
    except RenderError:
        problems = value_problems(raw_spec)
        if problems:
            raise ConfigurationError("; ".join(problems)) from None
        raise
    return desired, features, render_key
