"""``model-registry-operator render -f FILE`` on bad input: exit code 2, a message naming the document
(and the field), never a traceback. The real console command, run as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MR_HEAD = "apiVersion: modelregistry.opendatahub.io/v1beta1\nkind: ModelRegistry\n"
GOOD = MR_HEAD + "metadata: {name: reg}\nspec: {rest: {}, postgres: {generateDeployment: true}}\n"


def render(
    tmp_path: Path, content: bytes | str | None, *, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    if content is None:
        target = "-" if stdin is not None else str(tmp_path / "missing.yaml")
    else:
        path = tmp_path / "cr.yaml"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        target = str(path)
    command = Path(sys.executable).parent / "model-registry-operator"
    result = subprocess.run(
        [str(command), "render", "-f", target],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode("utf-8", "replace")
    )


def assert_bad_input(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line, not a dump
    for text in expected:
        assert text in result.stderr, result.stderr


def test_issue_example_unclosed_flow_sequence_spec(tmp_path: Path) -> None:
    result = render(tmp_path, MR_HEAD + "metadata: {name: reg}\nspec: [\n")
    assert_bad_input(result, "cr.yaml: document 1 is not valid YAML", "expected the node content")


def test_issue_example_tabs(tmp_path: Path) -> None:
    result = render(tmp_path, MR_HEAD + "metadata:\n\tname: reg\n")
    assert_bad_input(result, "document 1 is not valid YAML at line 4", "'\\t'")


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!!python/name:os.system", "!custom"])
def test_issue_example_tags(tmp_path: Path, tag: str) -> None:
    result = render(tmp_path, MR_HEAD + f"metadata: {tag} {{}}\n")
    assert_bad_input(result, "document 1 is not valid YAML at line 3", "could not determine a constructor")


def test_issue_example_deep_nesting(tmp_path: Path) -> None:
    result = render(tmp_path, MR_HEAD + "spec: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_bad_input(result, "nested deeper than 100 levels", "line 3")


def test_deep_nesting_in_a_block_mapping(tmp_path: Path) -> None:
    text = MR_HEAD + "spec:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300))
    assert_bad_input(render(tmp_path, text), "nested deeper than 100 levels")


def test_aliases_expanding_to_billions_of_values(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    result = render(tmp_path, MR_HEAD + "\n".join(lines) + "\n")
    assert_bad_input(result, "expands to more than 100000 values")


def test_issue_example_metadata_a_string(tmp_path: Path) -> None:
    result = render(tmp_path, MR_HEAD + 'metadata: "reg"\nspec: {rest: {}}\n')
    assert_bad_input(result, "document 1 (ModelRegistry): metadata must be an object, not a string")


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ("{name: 5}", "metadata.name must be a string"),
        ("{name: reg, namespace: [a]}", "metadata.namespace must be a string"),
        ("{name: reg, annotations: [a]}", "metadata.annotations must be an object"),
        ("{name: reg, labels: {a: 1}}", "metadata.labels.a: keys and values must be strings"),
    ],
)
def test_metadata_fields_of_the_wrong_type(tmp_path: Path, metadata: str, field: str) -> None:
    result = render(tmp_path, MR_HEAD + f"metadata: {metadata}\nspec: {{rest: {{}}}}\n")
    assert_bad_input(result, "document 1 (ModelRegistry)", field)


def test_a_list_at_top_level(tmp_path: Path) -> None:
    result = render(tmp_path, "- " + GOOD.replace("\n", "\n  "))
    assert_bad_input(result, "document 1 is a list, not an object")


def test_a_scalar_document(tmp_path: Path) -> None:
    result = render(tmp_path, GOOD + "---\njust text\n")
    assert_bad_input(result, "document 2 is a string, not an object")


def test_an_unknown_kind(tmp_path: Path) -> None:
    result = render(tmp_path, "apiVersion: v1\nkind: Foo\nmetadata: {name: x}\n")
    assert_bad_input(result, "no ModelRegistry or ModelUploadJob in", "cr.yaml (only Foo)")


def test_an_unknown_kind_of_our_group(tmp_path: Path) -> None:
    result = render(tmp_path, GOOD + "---\n" + GOOD.replace("kind: ModelRegistry", "kind: ModelRegistri"))
    assert_bad_input(result, "document 2: kind 'ModelRegistri'", "is neither ModelRegistry nor ModelUploadJob")


def test_no_kind(tmp_path: Path) -> None:
    assert_bad_input(render(tmp_path, "metadata: {name: x}\n"), "document 1: kind is missing")


def test_a_list_whose_items_are_no_list(tmp_path: Path) -> None:
    result = render(tmp_path, "apiVersion: v1\nkind: List\nitems: {a: b}\n")
    assert_bad_input(result, "document 1: a List's items must be a list, not an object")


def test_a_bad_item_of_a_list_is_named(tmp_path: Path) -> None:
    result = render(tmp_path, "apiVersion: v1\nkind: List\nitems: [5]\n")
    assert_bad_input(result, "document 1 item 1 is a int, not an object")


def test_a_missing_file(tmp_path: Path) -> None:
    assert_bad_input(render(tmp_path, None), "cannot read", "missing.yaml", "No such file or directory")


def test_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    command = Path(sys.executable).parent / "model-registry-operator"
    result = subprocess.run(
        [str(command), "render", "-f", str(tmp_path / "dir")], capture_output=True, text=True, check=False, timeout=60
    )
    assert_bad_input(result, "cannot read", "Is a directory")


def test_non_utf8_bytes(tmp_path: Path) -> None:
    result = render(tmp_path, MR_HEAD.encode() + b'metadata: {name: "r\xff\xfe"}\n')
    assert_bad_input(result, "cr.yaml is not UTF-8 text: byte 0xff at line 3")


def test_non_utf8_bytes_on_stdin(tmp_path: Path) -> None:
    result = render(tmp_path, None, stdin=b"\xc3(")
    assert_bad_input(result, "standard input is not UTF-8 text: byte 0xc3 at line 1")


def test_a_spec_problem_names_the_document_and_the_field(tmp_path: Path) -> None:
    text = (
        GOOD
        + "---\n"
        + MR_HEAD
        + "metadata: {name: second}\nspec: {rest: {port: many}, postgres: {generateDeployment: true}}\n"
    )
    assert_bad_input(render(tmp_path, text), "document 2 (ModelRegistry): second: spec.rest.port")


def test_spec_a_list(tmp_path: Path) -> None:
    result = render(tmp_path, MR_HEAD + "metadata: {name: reg}\nspec: [1, 2]\n")
    assert_bad_input(result, "document 1 (ModelRegistry): reg: spec: must be an object, not list")


def test_issue_example_emoji_image_names_the_field(tmp_path: Path) -> None:
    """`rest.image: "quay.io/x:🚀"`: refused by the validation, or by the render, naming the field."""
    text = (
        MR_HEAD + 'metadata: {name: reg}\nspec: {rest: {image: "quay.io/x:🚀"}, postgres: {generateDeployment: true}}\n'
    )
    assert_bad_input(render(tmp_path, text), "document 1 (ModelRegistry)", "spec.rest.image")


def test_an_upload_job_problem_names_the_document(tmp_path: Path) -> None:
    text = "apiVersion: modelregistry.opendatahub.io/v1alpha1\nkind: ModelUploadJob\nmetadata: {name: up}\nspec: {}\n"
    assert_bad_input(
        render(tmp_path, text), "document 1 (ModelUploadJob): spec.registry: Field required", "spec.source"
    )


def test_good_input_and_other_kinds_beside_it_render(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n---\n" + GOOD
    result = render(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
    assert result.stderr == ""


def test_a_list_of_registries_from_stdin(tmp_path: Path) -> None:
    listing = "apiVersion: v1\nkind: List\nitems:\n- " + GOOD.replace("\n", "\n  ")
    result = render(tmp_path, None, stdin=listing.encode())
    assert result.returncode == 0, result.stderr
    assert "name: reg" in result.stdout


@pytest.mark.parametrize(
    "sample", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "config" / "samples").glob("*/*modelregistry*.yaml"))
)
def test_the_samples_render(tmp_path: Path, sample: str) -> None:
    result = render(tmp_path, (ROOT / sample).read_bytes())
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
