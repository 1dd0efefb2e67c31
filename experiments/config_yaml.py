"""Reading YAML configs: a bounded SafeLoader (no repeated keys, alias bombs, deep nesting or
huge integers) and reading a config file of bounded size; the schema is experiments/config.py."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

MAX_CONFIG_BYTES = 1_000_000


class YamlFileError(Exception):
    """A config file that cannot be read as YAML (the one-line message names the file and why)."""


# A config is a handful of sections: anything deeper, larger once its aliases are expanded, or
# with an integer longer than any setting needs is hostile or broken, and would otherwise hang
# (an alias bomb expanded by the sweep or an error message) or raise deep inside Python.
MAX_YAML_DEPTH = 50
MAX_YAML_NODES = 100_000  # after alias expansion
MAX_INT_DIGITS = 30


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses repeated keys (YAML's last-one-wins would silently drop
    settings), nesting deeper than MAX_YAML_DEPTH, documents over MAX_YAML_NODES nodes with
    every alias expanded, recursive aliases and integers over MAX_INT_DIGITS digits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # its anchor is still being composed: a cycle
                raise yaml.composer.ComposerError(None, None, "an alias refers to the collection it is in", mark)
            return node
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        else:
            size = 1
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(None, None, f"more than {MAX_YAML_NODES:,} values once its aliases are expanded", mark)
        self._sizes[id(node)] = size
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isalnum() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"an integer of {digits:,} digits (at most {MAX_INT_DIGITS})", node.start_mark)
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def parse_yaml(text: str) -> Any:
    """YAML text to Python values, bounded (see _BoundedLoader); raises yaml.YAMLError."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.YAMLError) -> str:
    """The first line of what a YAML error says was wrong (at most 200 characters)."""
    return str(getattr(exc, "problem", None) or exc).splitlines()[0][:200]



def read_yaml_file(path: Path) -> Any:
    """The YAML document of a regular file of at most MAX_CONFIG_BYTES; YamlFileError naming the
    file (and line) otherwise."""
    try:
        # Only a regular file of bounded size: a FIFO would block and /dev/zero never end.
        if path.exists() and not path.is_dir() and not stat.S_ISREG(path.stat().st_mode):
            raise YamlFileError(f"{path}: cannot read config (not a regular file)")
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise YamlFileError(f"{path}: cannot read config (larger than {MAX_CONFIG_BYTES:,} bytes; a Peel config is a few KB)")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise YamlFileError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlFileError(f"{path}: cannot read config ({exc})") from None
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise YamlFileError(f"{where}: invalid YAML ({yaml_problem(exc)})") from None
    return raw
