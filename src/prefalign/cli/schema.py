"""A command's flags, made from its settings class (`prefalign.core.settings.Settings`): one flag per
field with the help line the schema writes (what it is, what it accepts, its default), and the
settings read back from the parsed flags and ``--config`` through the same coercion and checks
as YAML. Flags default to None so that a value in the YAML file is not overridden by a flag
that was not given."""

from __future__ import annotations

import argparse
from typing import Any

from prefalign.core.settings import ConfigError, Settings


def add_settings(parser: argparse.ArgumentParser, cls: type[Settings], *,
                 config: bool = True) -> None:
    """Every option of ``cls`` as a flag (positional fields as arguments); switches get a
    ``--no-`` twin so a YAML ``true`` can be turned off. ``config``: add ``--config FILE``. The
    class is kept as the parser's ``settings`` default (docs/cli.md is written from it)."""
    parser.set_defaults(settings=cls)
    for opt in cls.options():
        if opt.positional:
            parser.add_argument(opt.name, help=opt.help.replace("%", "%%"))
            continue
        text = opt.help.replace("%", "%%")
        if opt.is_switch and opt.routed:  # not giving it is its opposite
            parser.add_argument(opt.flag, dest=opt.name, action="store_const", const=True,
                                default=None, help=text)
            continue
        if opt.is_switch:
            negative = "--no-" + opt.flag[2:]
            if opt.default:  # on by default: the flag people use is the --no- one
                parser.add_argument(negative, dest=opt.name, action="store_const", const=False,
                                    default=None, help=f"turn off: {text}")
                parser.add_argument(opt.flag, dest=opt.name, action="store_const", const=True,
                                    default=None, help=f"the opposite of {negative}, for a "
                                                       "false in --config (default: on)")
            else:
                parser.add_argument(opt.flag, dest=opt.name, action="store_const", const=True,
                                    default=None, help=text)
                parser.add_argument(negative, dest=opt.name, action="store_const", const=False,
                                    default=None, help=f"the opposite of {opt.flag}, for a true "
                                                       "in --config (default: off)")
            continue
        if opt.name in cls.REPEATED:
            parser.add_argument(opt.flag, dest=opt.name, default=None, action="append",
                                metavar=opt.flag[2:].upper(), help=text)
            continue
        parser.add_argument(opt.flag, dest=opt.name, default=None, metavar=_metavar(opt),
                            help=text)
    if config:
        parser.add_argument("--config", metavar="FILE",
                            help="YAML file of these options (keys: the flag names without -- "
                                 "and with _ for -); flags override it (default: none)")


def _metavar(opt) -> str:
    return opt.name.upper()


def settings_from(cls: type[Settings], args: argparse.Namespace, *, check: bool = True,
                  yaml_dialect=None, **extra: Any):
    """``cls`` from ``--config`` (read by ``yaml_dialect`` if given: `Settings.from_sources`)
    and the flags (and ``extra`` values the command adds), checked (unless ``check=False``: the
    command checks them once after changing them); a required option given nowhere is one line
    naming its flag."""
    values = {opt.name: getattr(args, opt.name, None) for opt in cls.options()}
    values.update({k: v for k, v in extra.items() if v is not None})
    cfg = cls.from_sources(getattr(args, "config", None), check=check,
                           yaml_dialect=yaml_dialect, **values)
    missing = cls.missing_required({name: getattr(cfg, name) for name in cls.REQUIRED})
    if missing:
        raise ConfigError(f"{cls.flag_of(missing)} is required (or set {missing} in --config)")
    return cfg


def routed_flags(cls: type[Settings], args: argparse.Namespace, mapping: str) -> dict[str, str]:
    """Entry -> flag, for the routed options into ``mapping`` given as flags in ``args``."""
    return {route.path[-1]: cls.flag_of(name) for name, route in cls.ROUTED.items()
            if route.path[0] == mapping and len(route.path) == 2
            and getattr(args, name, None) is not None}


def parse_set(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` items: each value read as a YAML scalar or list (true, null, 0.5, [a, b]);
    what YAML cannot read stays text (the receiving schema coerces it by its declared type)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out
