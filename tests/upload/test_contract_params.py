"""The program's parameters are exactly the contract's, read from the flag and the variable the
contract names (the operator sets those variables)."""

from __future__ import annotations

from model_registry_upload.config import PARAMS, PROG, UploadParams, _from_args, _from_env
from model_registry_upload_contract import ENV_PREFIX, PROGRAM, Parameter, env_name


def test_the_parameters_are_the_contracts() -> None:
    names = [p.name for p in PARAMS]
    assert len(names) == len(set(names)), "a parameter defined twice"
    assert set(names) == set(Parameter)
    assert set(UploadParams.model_fields) == {p.value for p in Parameter}
    assert PROG == PROGRAM


def test_each_parameter_is_read_from_its_flag_and_its_contract_variable() -> None:
    for p in PARAMS:
        assert p.env == env_name(p.name) == ENV_PREFIX + p.name.value.upper()
        assert p.flag == "--" + p.name.value.replace("_", "-")
        assert _from_args([p.flag, "given"]) == {p.name.value: "given"}
        assert _from_env({env_name(p.name): "given"}) == {p.name.value: "given"}
