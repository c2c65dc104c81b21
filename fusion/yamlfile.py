"""The one YAML reader of every file the project reads (FUSION config, case.yaml, harness thresholds).

Safe-loaded (no tag constructs objects); a key written twice in one mapping is an error, not
"the last wins"; dates are never constructed, so `version: 2026-04-30` stays the text written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fusion.errors import InputError

__all__ = ["read_yaml"]

_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


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
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Safe-load a YAML file; `InputError` naming the file when it is missing, not text, not YAML,
    needs a tag that would construct objects, or repeats a key."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
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
