"""Experiment configurations shipped with acljax, and how any config is loaded, overridden and shrunk.

Each module here defines ``get_config()``. ``--config`` takes a module name of this package or the
path of any ``.py`` file that defines ``get_config()``::

    acljax train --config acl_glyphs_quickstart --workdir runs/q --set model.num_heads=4 --set learning_rate=3e-4
    acljax train --config my_experiment.py --workdir runs/mine --smoke

:func:`override` sets any field by its dotted path (``tasks.1.k_shot=1`` indexes a tuple); values are
parsed as Python literals and must match the field's current type. :func:`smoke` is the same config
made tiny (a few steps, small batches), for checking that a config runs end to end.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from typing import Any

NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))
SMOKE = {"steps": 2, "batch_size": 2, "log_every": 1, "validate_every": 2, "checkpoint_every": 2,
         "validation_batches": 1, "test_batches": 1, "eval_sequences": 8}  # applied to the fields a config has


def load(spec: str, kind: type | None = None) -> Any:
    """``get_config()`` of a module of this package (by name) or of a ``.py`` file (by path); with ``kind``, it
    must return an instance of that class. Whatever goes wrong (no such file, the file or get_config() raising,
    something else returned) is a ValueError or FileNotFoundError naming ``--config``."""
    if spec in NAMES:
        module = importlib.import_module(f"{__name__}.{spec}")
    elif spec.endswith(".py") and Path(spec).is_file():
        module = run_file(spec, f"--config {spec}")
    else:
        raise FileNotFoundError(f"--config {spec or repr(spec)}: neither a shipped config ({', '.join(NAMES)}) nor a "
                                ".py file")
    if not hasattr(module, "get_config"):
        raise ValueError(f"--config {spec}: a config file must define get_config()")
    try:
        config = module.get_config()
    except Exception as e:  # e.g. a field the config class does not have, or a value it refuses
        detail = e if isinstance(e, TypeError | ValueError) else f"{type(e).__name__}: {e}"
        raise ValueError(f"--config {spec}: get_config() failed: {detail}") from e
    wanted = kind or object
    if not dataclasses.is_dataclass(config) or isinstance(config, type) or not isinstance(config, wanted):
        raise ValueError(f"--config {spec}: get_config() must return {_a(wanted.__name__ if kind else 'config')} "
                         f"(a dataclass instance), got {type(config).__name__}")
    return config


def run_file(path: str | Path, what: str):
    """The module a user's ``.py`` file makes; anything going wrong in it (a syntax error, a failed import) is
    a ValueError naming ``what``."""
    loader_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:
        raise ValueError(f"{what}: the file failed to run ({type(e).__name__}: {e})") from e
    return module


def _a(name: str) -> str:
    return f"an {name}" if name[0] in "AEIOUaeiou" else f"a {name}"


def override(config: Any, assignments: list[str]) -> Any:
    """``config`` with every ``"dotted.path=value"`` of ``assignments`` applied, then validated once by the config
    classes as if written in the file (so their order never matters). Errors name the assignment(s) involved
    and what is accepted."""
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        if not sep or not path:
            raise ValueError(f"--set {assignment!r}: expected FIELD=VALUE, e.g. --set model.num_heads=8")
        config = _replaced(config, path.split("."), text, assignment)
    try:
        return _validated(config)
    except (TypeError, ValueError) as e:
        named = [a for a in assignments if _mentions(str(e), a.partition("=")[0].split(".")[-1])] or assignments
        raise ValueError(f"{' '.join(f'--set {a!r}' for a in named)}: {e}") from e


def _mentions(message: str, field: str) -> bool:
    """``field`` stands in ``message`` as a whole name ("size" is not in "batch_size")."""
    return re.search(rf"(?<!\w){re.escape(field)}(?!\w)", message) is not None


def _validated(node: Any) -> Any:
    """``node`` built again through its classes, innermost first: each dataclass checks its fields once."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return type(node)(**{f.name: _validated(getattr(node, f.name)) for f in dataclasses.fields(node) if f.init})
    return tuple(_validated(item) for item in node) if isinstance(node, tuple) else node


def _unchecked(node: Any, **changes: Any) -> Any:
    """A copy of the dataclass ``node`` with ``changes``, not validated yet (see :func:`_validated`)."""
    new = copy.copy(node)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new


def smoke(config: Any) -> Any:
    """``config`` shrunk to a run of seconds: the :data:`SMOKE` sizes for the fields it has."""
    fields = {f.name for f in dataclasses.fields(config)}
    return dataclasses.replace(config, **{k: v for k, v in SMOKE.items() if k in fields})


def _replaced(node: Any, keys: list[str], text: str, assignment: str) -> Any:
    key, rest = keys[0], keys[1:]
    if dataclasses.is_dataclass(node):
        names = [f.name for f in dataclasses.fields(node) if f.init]
        if key not in names:
            raise ValueError(f"--set {assignment!r}: {type(node).__name__} has no field {key!r}; "
                             f"its fields: {', '.join(names)}")
        old = getattr(node, key)
        new = _replaced(old, rest, text, assignment) if rest else _parse(text, old, assignment)
        return _unchecked(node, **{key: new})
    if isinstance(node, tuple) and key.isdigit() and int(key) < len(node):
        items = list(node)
        items[int(key)] = _replaced(node[int(key)], rest, text, assignment) if rest else _parse(
            text, node[int(key)], assignment)
        return tuple(items)
    raise ValueError(f"--set {assignment!r}: {key!r} does not index a value of type {type(node).__name__}"
                     + (f" (indices 0..{len(node) - 1})" if isinstance(node, tuple) else ""))


def _parse(text: str, old: Any, assignment: str) -> Any:
    """``text`` as a Python literal of ``old``'s type (an int is accepted for a float; a bare word is a string;
    None is accepted where the field has no value yet or holds a string or number)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word: a string
    if isinstance(old, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and (old is None or isinstance(old, bool))
    elif isinstance(old, float):
        ok, value = isinstance(value, int | float), float(value) if isinstance(value, int | float) else value
    elif isinstance(old, tuple) and any(dataclasses.is_dataclass(item) for item in old):
        ok = False
    elif isinstance(old, tuple):
        ok, value = isinstance(value, list | tuple), tuple(value) if isinstance(value, list | tuple) else value
    elif dataclasses.is_dataclass(old):
        ok = False
    else:
        ok = old is None or value is None or isinstance(value, type(old))
    if not ok:
        structured = dataclasses.is_dataclass(old) or isinstance(old, tuple) and any(map(dataclasses.is_dataclass, old))
        wanted = "one field inside it (e.g. model.num_heads, pools.0.dataset)" if structured else \
            f"a value of type {type(old).__name__}"
        raise ValueError(f"--set {assignment!r}: the field holds {old!r}; give {wanted}, got {value!r}")
    return value
