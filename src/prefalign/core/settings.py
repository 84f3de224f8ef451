"""One schema per command: a command's settings are a dataclass, and that dataclass is the only
place its options are described.

A settings class derives from :class:`Settings` and declares each field with :func:`setting`:
its default, what it is (``help``) and what it accepts (``rule``: a check and its wording;
otherwise the field's type says it), beside the field itself. Class variables say which fields
have no flag (``NO_FLAG``: mappings given another way; ``LIBRARY_ONLY``: objects for library
use). Settings that several commands share (sampling, back ends) are classes of their own that
the commands' settings derive from (a field's default may differ per command: :func:`redefault`,
its help and rule kept). From that
one description come the command's flags with their help lines (`prefalign.cli.schema`), the YAML
keys of ``--config`` (the field names), the reading and checking of both
(:meth:`Settings.from_sources`), and the options tables in docs/cli.md
(``scripts/cli_docs.py``).

Some flags set an entry of a mapping field (``--beta`` is ``objective_args.beta``; iterate's
``--lr`` is ``train_args.lr``): those are ``ROUTED`` options, and each is a top-level YAML key of
the same name as well, so ``beta: 0.1`` in a train YAML means what ``--beta 0.1`` means. The
same entry given both at the top level and inside its mapping is refused, not silently resolved.

Values are coerced to each field's declared type (``lr: 1e-5``, which YAML reads as text, is
the number 1e-5; ``--report-to a,b`` is a list) and errors are :class:`ConfigError` (a
``ValueError``: the CLI prints it as one line) naming the setting, the file and line or the flag
it came from, and what it accepts.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar


class ConfigError(ValueError):
    """A setting that cannot be used: wrong type, out of range, unknown, or unreadable YAML."""


Rule = tuple[Callable[[Any], bool], str]  # (check, what it accepts)


@dataclass(frozen=True)
class Routed:
    """An option with no field of its own: its value goes to ``path`` inside a mapping field
    (``("objective_args", "beta")``), or, with ``const``, a true value sets ``path`` to ``const``
    (``no_reference: true`` is ``reference: none``)."""

    path: tuple[str, ...]
    hint: Any
    help: str
    const: Any = None


@dataclass(frozen=True)
class Option:
    """One option of a command, as its flag, its YAML key and its docs row show it."""

    name: str  # the field, and the YAML key
    flag: str  # --name-with-dashes (or the name itself for a positional argument)
    hint: Any  # the field's declared type
    default: Any
    help: str  # what it is; what it accepts; its default
    required: bool
    positional: bool
    routed: bool = False  # sets an entry of a mapping field (`Routed`)

    @property
    def is_switch(self) -> bool:
        return self.hint is bool


def setting(default: Any = dataclasses.MISSING, *, help: str, rule: Rule | None = None,
            factory: Callable[[], Any] | None = None, repr: bool = True) -> Any:
    """A settings field: its default (or ``factory``), what it is and what it accepts, declared
    once beside the field (the flag's help, the docs row and the check all read them)."""
    metadata = {"help": help, **({"rule": rule} if rule is not None else {})}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata, repr=repr)
    return dataclasses.field(default=default, metadata=metadata, repr=repr)


def redefault(cls: type, name: str, default: Any, *, help: str | None = None,
              rule: Rule | None = None) -> Any:
    """Field ``name`` of the shared settings class ``cls`` with another default in a command
    that derives from it; its help and rule stay unless given."""
    base = cls.__dataclass_fields__[name]
    return setting(default, help=help or base.metadata["help"],
                   rule=rule if rule is not None else base.metadata.get("rule"))


def values_of(cfg: Any, *classes: type) -> dict[str, Any]:
    """``cfg``'s values of the fields the settings ``classes`` declare (what one command hands
    another: iterate's synth settings to each round's synth job)."""
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    return {name: getattr(cfg, name) for name in names}


class Settings:
    """Base of every command's settings dataclass (see the module docstring)."""

    NO_FLAG: ClassVar[frozenset[str]] = frozenset()  # valid in YAML, no flag (mappings)
    LIBRARY_ONLY: ClassVar[frozenset[str]] = frozenset()  # objects: neither flag nor YAML key
    REQUIRED: ClassVar[tuple[str, ...]] = ()  # must be set by a flag or the YAML file
    POSITIONAL: ClassVar[tuple[str, ...]] = ()  # given without a flag, in this order
    FLAGS: ClassVar[dict[str, str]] = {}  # field -> flag, where it is not --the-field-name
    # list fields whose flag is given once per item (``--filter A --filter B``); an item is
    # never split at commas, and a YAML text is one item
    REPEATED: ClassVar[frozenset[str]] = frozenset()
    # names other tools use for a field (suggested in the error, never accepted silently)
    KNOWN_AS: ClassVar[dict[str, str]] = {}
    # options that set an entry of a mapping field (a flag and a top-level YAML key each)
    ROUTED: ClassVar[dict[str, Routed]] = {}
    origins: ClassVar[dict[str, str]] = {}  # an instance's: set by from_sources (read only)

    # -- the schema ----------------------------------------------------------------------------
    @classmethod
    def help_text(cls, name: str) -> str | None:
        """What field ``name`` is, as its :func:`setting` says (None if it has no help)."""
        f = cls.__dataclass_fields__.get(name)
        return f.metadata.get("help") if f is not None else None

    @classmethod
    def rules(cls) -> dict[str, Rule]:
        """Each field's rule (check, what it accepts), from its :func:`setting`."""
        return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls) if "rule" in f.metadata}

    @classmethod
    def ordered_fields(cls) -> list[dataclasses.Field]:
        """The fields, a command's own first (in declaration order), then those of the shared
        settings it derives from (sampling, back end), nearest first, so its help reads from the
        top."""
        mro = [k for k in cls.__mro__ if dataclasses.is_dataclass(k)]
        owner = {}  # a field belongs to the most basic class declaring it (not to a redefault)
        for rank, klass in enumerate(mro):
            for name in inspect.get_annotations(klass):
                owner[name] = rank
        fields = dataclasses.fields(cls)
        return sorted(fields, key=lambda f: owner[f.name])  # stable: declaration order within

    @classmethod
    def flag_of(cls, name: str) -> str:
        if name in cls.POSITIONAL:
            return name.upper()
        return cls.FLAGS.get(name, "--" + name.replace("_", "-"))

    @classmethod
    def options(cls) -> list[Option]:
        """Every field that has a flag, in declaration order, then the routed options."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in cls.ordered_fields():
            if f.name in cls.NO_FLAG or f.name in cls.LIBRARY_ONLY or not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            out.append(Option(f.name, cls.flag_of(f.name), hints[f.name], default,
                              cls.help_of(f.name, default, hints[f.name]),
                              f.name in cls.REQUIRED, f.name in cls.POSITIONAL))
        for name, route in cls.ROUTED.items():
            out.append(Option(name, cls.flag_of(name), route.hint, None,
                              cls._routed_help(route), False, False, routed=True))
        return out

    @classmethod
    def _routed_help(cls, route: Routed) -> str:
        text = route.help
        if "(default" in text:  # written whole (what it accepts and its default)
            return text
        accepts = "" if route.hint is bool else type_words(route.hint)
        if accepts and accepts not in text:
            text = f"{text}; {accepts}"
        if "default" not in text:
            text += " (default: off)" if route.hint is bool else " (default: none)"
        return text

    @classmethod
    def help_of(cls, name: str, default: Any, hint: Any) -> str:
        """What the field is, what it accepts (its rule, else its type) and its default."""
        text = cls.help_text(name) or name.replace("_", " ")  # a test checks every field has one
        rule = cls.rules().get(name)
        accepts = rule[1] if rule is not None else (
            "" if hint is bool else "repeatable" if name in cls.REPEATED else type_words(hint))
        if accepts and accepts not in text:
            cut = text.find(" (default")  # what it accepts goes before a stated default
            text = f"{text[:cut]}; {accepts}{text[cut:]}" if cut >= 0 else f"{text}; {accepts}"
        if name in cls.REQUIRED:
            if "required" not in text:
                text += " (required)"
        elif hint is bool:
            text += " (default: on)" if default else " (default: off)"
        elif "default" not in text:
            text += " (default: none)" if default in (None, "", [], {}) else \
                f" (default: {show(default)})"
        return text

    # -- reading and checking ------------------------------------------------------------------
    @classmethod
    def from_sources(cls, yaml_path: str | None = None, *, check: bool = True,
                     yaml_dialect=None, **overrides):
        """YAML values first, then ``overrides`` (flags; ``None`` = not given); unknown keys
        are an error. Every value is coerced and checked (:meth:`validate`); an error names the
        file and line for a YAML value, or the flag. ``check=False`` leaves :meth:`validate` to
        the caller (which changes the settings further first). ``yaml_dialect(path, values,
        lines) -> (values, origins)`` reads a file written in another tool's terms (TRL's)."""
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        if yaml_path:
            loaded, lines = read_yaml(yaml_path)
            loaded = {str(k): v for k, v in loaded.items()}
            if yaml_dialect is not None:
                loaded, from_file = yaml_dialect(yaml_path, loaded, lines)
            else:
                from_file = {k: f"{yaml_path}, line {n}" for k, n in lines.items()}
            values.update(loaded)
            origins.update(from_file)
        given = {k: v for k, v in overrides.items() if v is not None}
        routed_yaml = {k: values.pop(k) for k in list(values) if k in cls.ROUTED}
        routed_flags = {k: given.pop(k) for k in list(given) if k in cls.ROUTED}
        values.update(given)
        for k in given:
            origins[k] = cls.flag_of(k)
        # a flag overrides a YAML value, whether the YAML gave it routed or in its mapping
        for name, value in routed_yaml.items():
            cls._route(values, origins, name, value, origins.get(name, name), override=False)
        for name, value in routed_flags.items():
            cls._route(values, origins, name, value, cls.flag_of(name), override=True)
        known = {f.name for f in dataclasses.fields(cls)} - cls.LIBRARY_ONLY
        unknown = sorted(set(values) - known)
        if unknown:
            import difflib

            def hint(u):
                close = [cls.KNOWN_AS[u]] if u in cls.KNOWN_AS else \
                    difflib.get_close_matches(u, sorted(known), 2)
                return f"{u} (did you mean {', '.join(close)}?)" if close else u

            where = f"{yaml_path}: " if yaml_path else ""
            if len(unknown) == 1 and unknown[0] in lines_of(origins):
                where = f"{origins[unknown[0]]}: "
            raise ConfigError(f"{where}unknown option(s): {'; '.join(hint(u) for u in unknown)}")
        values = coerce_values(cls, values, origins)
        cfg = cls(**values)
        cfg.origins = origins  # where each value came from, for checks made later
        if check:  # a caller that changes the settings further checks them once, after
            cfg.validate(origins)
        return cfg

    @classmethod
    def _route(cls, values: dict[str, Any], origins: dict[str, str], name: str, value: Any,
               origin: str, *, override: bool) -> None:
        """Put routed option ``name``'s ``value`` at its path in ``values`` (copying the
        mappings on the way, never changing the caller's), noting ``origin`` for the entry."""
        route = cls.ROUTED[name]
        try:
            value = coerce(value, route.hint)
        except TypeError as e:
            raise ConfigError(f"{subject(name, {name: origin})} must be {e}, got {value!r}") \
                from None
        if route.const is not None:
            if not value:
                return
            value = route.const
        *parents, leaf = route.path
        where_, node = values, None
        for depth, key in enumerate(parents):
            node = where_.get(key)
            if node is None:
                node = {}
            elif not isinstance(node, dict):
                dotted = ".".join(route.path[:depth + 1])
                raise ConfigError(f"{subject(dotted, origins)} must be a mapping of name: value,"
                                  f" got {node!r}")
            where_[key] = node = dict(node)
            where_ = node
        dotted = ".".join(route.path)
        if leaf in where_ and not override:
            first = origins.get(dotted) or origins.get(route.path[0]) or dotted
            raise ConfigError(f"{origin}: {name} is also given as {dotted} ({first}); give it "
                              "once")
        where_[leaf] = value
        origins[dotted] = origin

    def validate(self, origins: dict[str, str] | None = None):
        """Coerce every field to its declared type and check it against its rule, in place;
        then :meth:`check` (the checks that span fields). Raises :class:`ConfigError`."""
        origins = origins or {}
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in coerce_values(type(self), values, origins).items():
            setattr(self, name, value)
        for name, (ok, allowed) in self.rules().items():
            value = getattr(self, name)
            if not ok(value):
                raise ConfigError(f"{subject(name, origins)} must be {allowed}, got {value!r}")
        self.check(origins)
        self._checked_values = self._values_seen()
        return self

    def check(self, origins: dict[str, str]) -> None:
        """Checks across fields (a subclass's); raise ConfigError."""

    def checked(self):
        """``self``, validated unless it already was and no field changed since (so a config
        the CLI has just checked is not checked again by the library it calls)."""
        if getattr(self, "_checked_values", None) != self._values_seen():
            self.validate(self.origins)
        return self

    def _values_seen(self) -> tuple:
        """The fields' values as the last check saw them: plain values by value, objects (data
        sets, models) by identity."""
        def seen(v):
            if v is None or isinstance(v, (str, int, float, bool)):
                return v
            if isinstance(v, (list, tuple, dict)) and len(v) <= 64:
                return repr(v)
            return ("object", id(v))

        return tuple((f.name, seen(getattr(self, f.name))) for f in dataclasses.fields(self))

    @classmethod
    def missing_required(cls, values: dict[str, Any]) -> str | None:
        for name in cls.REQUIRED:
            if values.get(name) in (None, ""):
                return name
        return None


def show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def type_words(hint: Any) -> str:
    """What a type accepts, in words ("a whole number", "a number or null", ...)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        words = [type_words(a) for a in args if a is not type(None)]
        words = [w for w in words if w]
        return " or ".join(words) + (" or null" if type(None) in args and words else "")
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a number"
    if origin in (list, tuple):
        return "comma-separated values"
    return ""


# ---- reading YAML -----------------------------------------------------------------------------
def read_yaml(path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The top-level mapping of a YAML file and the line of each key (and of each key of a
    nested mapping, as ``parent.key``). Syntax errors, tags (``!!python/object`` and the like:
    plain values only) and duplicate keys are one-line errors naming the file and line."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"{path}, line {node.start_mark.line + 1}: expected a mapping of "
                              "option: value at the top level")
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in lines:
                raise ConfigError(f"{path}, line {key_node.start_mark.line + 1}: option {key!r} "
                                  f"is given twice (first on line {lines[key]})")
            lines[key] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for sub_key, _ in value_node.value:
                    lines[f"{key}.{sub_key.value}"] = sub_key.start_mark.line + 1
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = e.problem or e.context or "invalid YAML"
        if e.problem and e.context and e.context_mark is not None and mark is not e.context_mark \
                and e.context_mark.line != mark.line:
            problem += f" ({e.context} that starts on line {e.context_mark.line + 1})"
        if isinstance(e, yaml.constructor.ConstructorError) and "tag" in problem:
            problem += " (tags are not allowed: plain values only)"
        raise ConfigError(f"{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    finally:
        loader.dispose()
    return data, {str(k): v for k, v in lines.items()}


def lines_of(origins: dict[str, str]) -> set[str]:
    return {k for k, v in origins.items() if ", line " in v}


def where(name: str, origins: dict[str, str]) -> str:
    origin = origins.get(name)
    return f"{origin}: " if origin else ""


def subject(name: str, origins: dict[str, str]) -> str:
    """How an error names a setting: ``--lr`` (a flag), ``FILE, line 3: lr`` (YAML) or ``lr``."""
    origin = origins.get(name)
    if origin and (origin.startswith("--") or origin.isupper() or origin.endswith("." + name)):
        return origin  # a flag, a positional argument, or a dotted name (train_args.lr)
    return f"{origin}: {name}" if origin else name


# ---- coercion by declared type ------------------------------------------------------------------
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
NULL_WORDS = ("null", "none", "~")


def _number(text: str) -> float:
    return float(text.strip().replace("_", ""))


def coerce(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (a field's type), or raise TypeError with what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if type(None) in args and (value is None or (
                isinstance(value, str) and value.strip().lower() in NULL_WORDS)):
            return None  # a flag's text "null" turns a YAML value off
        for arg in args:  # a value that already has one of the types stays as it is
            if arg in (str, bool) and type(value) is arg:
                return value
            if arg in (int, float) and type(value) in (int, float) and not isinstance(value, bool):
                return coerce(value, arg)
            if typing.get_origin(arg) in (list, tuple, dict) and isinstance(
                    value, typing.get_origin(arg)):
                return coerce(value, arg)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except TypeError as e:
                errors.append(str(e))
        raise TypeError(" or ".join(errors) + (" or null" if type(None) in args else ""))
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise TypeError("true or false")
    if hint is int:
        if isinstance(value, bool):
            raise TypeError("a whole number")
        if isinstance(value, int):
            return value
        try:
            number = _number(value) if isinstance(value, str) else value
        except ValueError:
            raise TypeError("a whole number") from None
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            return int(number)
        raise TypeError("a whole number")
    if hint is float:
        if isinstance(value, bool):
            raise TypeError("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return _number(value)
            except ValueError:
                pass
        raise TypeError("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise TypeError("text")
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or (args and args[-1] is not Ellipsis
                                                    and len(items) != len(args)):
            raise TypeError(f"a list of {len(args)} values")
        return tuple(coerce(v, a) for v, a in zip(items, args))
    if origin is list:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise TypeError("a list")
        return [coerce(v, args[0]) if args else v for v in items]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError("a mapping of name: value")
        return dict(value)
    return value


def coerce_values(cls, values: dict[str, Any], origins: dict[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        if name in cls.REPEATED and isinstance(value, str):
            value = [value]
        try:
            out[name] = coerce(value, hints[name])
        except TypeError as e:
            raise ConfigError(f"{subject(name, origins)} must be {e}, got {value!r}") from None
    return out


# ---- rules ------------------------------------------------------------------------------------
def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def at_least(n) -> Callable[[Any], bool]:
    return lambda v: finite(v) and v >= n


def positive(v) -> bool:
    return finite(v) and v > 0


def optional(check) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def one_of(*choices) -> Rule:
    return (lambda v: v in choices), "one of " + ", ".join(choices)
