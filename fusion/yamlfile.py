"""The one YAML reader of every file the project reads (FUSION config, case.yaml, harness thresholds).

Safe-loaded (no tag constructs objects); a key written twice in one mapping is an error, not
"the last wins"; dates are never constructed, so `version: 2026-04-30` stays the text written.
Other unquoted values YAML types (`1.10` a float that prints 1.1, `2026` an int, `no` a boolean)
are remembered as written, so a key that wants text can say to quote it (`Scalars.not_text`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fusion.errors import InputError

__all__ = ["Scalars", "read_yaml", "read_yaml_scalars"]

_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_KINDS = {"tag:yaml.org,2002:int": "number", "tag:yaml.org,2002:float": "number",
          "tag:yaml.org,2002:bool": "boolean", "tag:yaml.org,2002:null": "null"}


@dataclass(frozen=True)
class _Plain:
    text: str  # as written
    line: int
    kind: str  # number, boolean or null
    value: Any  # what YAML made of it


@dataclass
class Scalars:
    """The unquoted values of a file that YAML did not read as text, by key path ('inference.seed')."""

    plain: dict[str, _Plain] = field(default_factory=dict)

    def not_text(self, key: str) -> str | None:
        """Why `key`'s value is not a string, as the user wrote it, or None if it was not typed by YAML."""
        found = self.plain.get(key)
        if found is None:
            return None
        leaf = key.rsplit(".", 1)[-1]
        if found.kind == "null":
            written = found.text or "an empty value"
            return f"line {found.line}: no value (YAML reads {written} as null); give one or remove the key"
        return (f"line {found.line}: YAML reads {found.text} as the {found.kind} {found.value!r}, not text; "
                f'quote it: {leaf}: "{found.text}"')

    def boolean(self, key: str) -> str | None:
        """Why a number key holds a boolean (`seed: yes`), or None if YAML did not type it so."""
        found = self.plain.get(key)
        if found is None or found.kind != "boolean":
            return None
        return f"line {found.line}: YAML reads {found.text} as the boolean {found.value!r}, not a number"


class _DuplicateKey(yaml.YAMLError):
    """A key seen twice in one mapping; the text names the key path and both lines."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys at any depth and keeps dates as their text."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._paths: dict[yaml.Node, str] = {}
        self.scalars = Scalars()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        where = self._paths.get(node, "")
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<:` merges may repeat keys on purpose; complex keys are refused by PyYAML
            key = self.construct_object(key_node)
            path = f"{where}.{key}" if where else str(key)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise _DuplicateKey(f"duplicate key '{path}' at line {line} (first at line {first_line[key]})")
            first_line[key] = line
            self._paths[value_node] = path
            if isinstance(value_node, yaml.ScalarNode) and value_node.style is None and value_node.tag in _KINDS:
                self.scalars.plain[path] = _Plain(value_node.value, value_node.start_mark.line + 1,
                                                  _KINDS[value_node.tag], self.construct_object(value_node))
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Safe-load a YAML file; `InputError` naming the file when it is missing, not text, not YAML,
    needs a tag that would construct objects, or repeats a key."""
    return read_yaml_scalars(path, what)[0]


def read_yaml_scalars(path: str | Path, what: str = "config file") -> tuple[Any, Scalars]:
    """`read_yaml` and the unquoted values YAML typed, as written, for errors that say to quote them."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    try:
        loader = _Loader(path.read_text())
        try:
            return loader.get_single_data(), loader.scalars
        finally:
            loader.dispose()
    except _DuplicateKey as exc:
        raise InputError(path, str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise InputError(path, f"YAML tag refused{where} (files are safe-loaded)") from None
        raise InputError(path, f"malformed YAML{where}") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a text file") from None
