"""Hostile policy files: whatever a file holds, loading it gives a PolicySet or a PolicyError (with a file name), never
another exception, a hang or unbounded memory. Random YAML, mutated real policies, huge files, deep nesting and
alias bombs (the file-size bound lives in escalator.policy_file; the nesting and alias bounds in the core's loader)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.core.policy import PolicyError, PolicySet
from escalator.policy_file import MAX_POLICY_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, check_yaml_bounds, load_policy_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "policy.yaml").read_text()

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def load(tmp_path: Path, text: str | bytes) -> PolicySet | PolicyError:
    p = tmp_path / "policy.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        return load_policy_file(p)
    except PolicyError as exc:
        assert exc.issues and all(i.filename == str(p) for i in exc.issues), exc
        assert str(exc)
        return exc


@FUZZ
@given(doc=yaml_values)
def test_random_yaml_documents(tmp_path: Path, doc: Any) -> None:
    load(tmp_path, yaml.safe_dump(doc))
    load(tmp_path, yaml.safe_dump({"version": 1, "policies": doc}))


@FUZZ
@given(text=st.text(max_size=400))
def test_random_text(tmp_path: Path, text: str) -> None:
    load(tmp_path, text)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_random_bytes(tmp_path: Path, raw: bytes) -> None:
    load(tmp_path, raw)


@FUZZ
@given(data=st.data())
def test_mutated_example_policy(tmp_path: Path, data: st.DataObject) -> None:
    """A real policy with a slice cut out, duplicated or replaced by junk: the file's structure is half right."""
    n = len(EXAMPLE)
    start = data.draw(st.integers(0, n - 1))
    end = data.draw(st.integers(start, min(n, start + 200)))
    junk = data.draw(
        st.sampled_from(["", "&a ", "*a", "<<: *a\n", ":", "- ", "{", "[", "\t", "!!python/object:os.system", "'"])
    )
    mode = data.draw(st.sampled_from(["cut", "dup", "junk"]))
    text = {
        "cut": EXAMPLE[:start] + EXAMPLE[end:],
        "dup": EXAMPLE[:end] + EXAMPLE[start:],
        "junk": EXAMPLE[:start] + junk + EXAMPLE[end:],
    }[mode]
    load(tmp_path, text)


def test_the_example_still_loads(tmp_path: Path) -> None:
    assert isinstance(load(tmp_path, EXAMPLE), PolicySet)


def bomb(levels: int, width: int = 9) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("billion laughs", bomb(10), "YAML nodes once aliases are expanded"),
        (
            "a bomb inside a policy",
            "version: 1\npolicies:\n" + "".join(f"  {line}\n" for line in bomb(9).splitlines()),
            "aliases",
        ),
        (
            "merge-key bomb",
            "a: &a {k: v}\n"
            + "".join(
                f"b{i}: &b{i} {{<<: [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 9)}]}}\n" for i in range(10)
            ),
            "aliases",
        ),
        ("deep flow sequence", "[" * 100_000 + "]" * 100_000, "nested deeper"),
        ("deep flow mapping", "{a: " * 5_000 + "1" + "}" * 5_000, "nested deeper"),
        (
            "deep block mapping",
            "".join(" " * i + f"k{i}:\n" for i in range(MAX_YAML_DEPTH + 5)) + " " * 80 + "1\n",
            "nested deeper",
        ),
        ("huge file", "version: 1\n# " + "x" * (MAX_POLICY_BYTES + 10) + "\n", "larger than"),
    ],
)
def test_bombs_are_refused(tmp_path: Path, name: str, text: str, message: str) -> None:
    result = load(tmp_path, text)
    assert isinstance(result, PolicyError), name
    assert message in str(result), (name, str(result)[:300])


def test_a_long_but_legal_document_is_not_refused_by_the_bounds() -> None:
    check_yaml_bounds("k: [" + ", ".join(["1"] * (MAX_YAML_NODES // 2)) + "]\n")  # no error: within the bound
    with pytest.raises(PolicyError, match="nodes"):
        check_yaml_bounds("k: [" + ", ".join(["1"] * (MAX_YAML_NODES + 1)) + "]\n")


def test_aliases_within_the_bound_still_work(tmp_path: Path) -> None:
    """Anchors and aliases are legal YAML: a policy reusing a block through an alias loads as before."""
    text = EXAMPLE.replace("always: {timezone: UTC}", "always: &utc {timezone: UTC}\n  also-always: *utc", 1)
    assert "*utc" in text
    assert isinstance(load(tmp_path, text), PolicySet)


@pytest.mark.parametrize(
    ("what", "text", "expected"),
    [
        ("alias bomb", bomb(10), "YAML nodes"),
        ("deep nesting", "k: " + "[" * 200 + "]" * 200 + "\n", "nested deeper"),
        ("control character", "version: 1\x1f\n", "not a YAML text"),
    ],
)
def test_every_yaml_file_the_project_reads_is_bounded(what: str, text: str, expected: str) -> None:
    """The bounds are the core loader's own: the gateway's mappings and the relay's directory get them too."""
    from escalator.gateway.mapfile import load_mapping_text
    from escalator.notify.routing import load_directory

    for load in (load_mapping_text, load_directory):
        with pytest.raises(ValueError, match=expected) as err:  # MappingError / RoutingError: issues with file names
            load(text, f"{what}.yaml")
        assert f"{what}.yaml" in str(err.value)
