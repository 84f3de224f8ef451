"""The objectives registry: one record per objective, looked up by name or alias.

Every objective registers itself with :func:`register`, giving the metadata a user (and the
training engine) needs before calling it: whether it needs a reference model, what shape of
data it trains on, its hyperparameters with defaults and ranges, the extra named tensors it
needs, and the paper it comes from. Dispatch (``compute*``) looks entries up here; nothing
switches on names with if/elif.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from prefalign.core.settings import coerce as coerce_setting

SHAPES = ("pairwise", "unpaired", "listwise", "sft")


class Resolved(dict):
    """An objective's hyperparameters with the defaults filled in and every value checked
    (`Objective.resolve`); resolving them again for the same objective is free."""

    def __init__(self, values: dict[str, Any], *, objective: str):
        super().__init__(values)
        self.objective = objective


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of an objective: name (TRL's where TRL has one), default, meaning.

    Numbers have a declared range where the objective's formula needs one: ``low``/``high``
    (None = unbounded), ``low_open``/``high_open`` for strict bounds. Every numeric value must
    be finite. :meth:`check` enforces type, choices and range (the functional ``compute*``,
    the trainer and the CLI all go through it); :meth:`coerce` first turns text from a YAML
    file or ``--set`` into the declared type.
    """

    name: str
    default: Any
    description: str
    typical: str = ""
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @property
    def numeric(self) -> bool:
        return self.choices is None and not isinstance(self.default, bool) and (
            isinstance(self.default, (int, float)) or self.default is None)

    @property
    def allowed(self) -> str:
        """The allowed values in words: an interval, the choices, or the type."""
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        if isinstance(self.default, bool):
            return "True or False"
        if not self.numeric:
            return "any value"
        none = " (or None = off)" if self.default is None else ""
        if self.low is None and self.high is None:
            return "a finite number" + none
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}{none}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}{none}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}{none}")

    def coerce(self, objective: str, value: Any) -> Any:
        """``value`` (text from YAML or ``--set`` included) as this hyperparameter's type, then
        :meth:`check`-ed. Text is read by the settings' one coercion (`core.settings.coerce`).
        Raises ValueError naming the hyperparameter and what it accepts."""
        hint = (bool if isinstance(self.default, bool) else
                (float | None) if self.default is None else float) if (
            self.choices is None and (self.numeric or isinstance(self.default, bool))) else None
        if isinstance(value, str) and hint is not None:
            if self.default is None and not value.strip():
                value = None  # an empty --set value turns an optional one off
            else:
                try:
                    value = coerce_setting(value, hint)
                except TypeError:
                    what = self.allowed if hint is bool else f"a number {self.allowed}"
                    raise ValueError(f"objective {objective!r}: hyperparameter {self.name} must "
                                     f"be {what}, got {value!r}") from None
        return self.check(objective, value)

    def check(self, objective: str, value: Any) -> Any:
        """Return ``value`` if it is acceptable for this hyperparameter, else raise ValueError."""
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(
                    f"objective {objective!r}: hyperparameter {self.name}={value!r} is not one of "
                    f"{', '.join(map(repr, self.choices))}"
                )
            return value
        if isinstance(self.default, bool):
            if not isinstance(value, bool):
                raise ValueError(
                    f"objective {objective!r}: hyperparameter {self.name} must be True or False, "
                    f"got {value!r}"
                )
            return value
        if self.numeric:
            if value is None and self.default is None:
                return value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(
                    f"objective {objective!r}: hyperparameter {self.name} must be a number, "
                    f"got {value!r}"
                )
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(
                    f"objective {objective!r}: hyperparameter {self.name}={value:g} is not a "
                    f"finite number; it must be {self.allowed}"
                )
            if not self._in_range(value):
                raise ValueError(
                    f"objective {objective!r}: hyperparameter {self.name}={value:g} is out of "
                    f"range: it must be {self.allowed}"
                )
            return value
        return value

    def _in_range(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True


@dataclass(frozen=True)
class Objective:
    """A registered objective and everything needed to call it correctly.

    Attributes:
        name: canonical name (TRL's ``loss_type`` where TRL has the method).
        formula: the loss in plain math, per example.
        paper: title of the paper that introduced it.
        needs_reference: True when reference-model log-probs are required.
        shape: "pairwise", "unpaired", "listwise" or "sft".
        hyperparameters: every accepted hyperparameter with its default: the objective's own,
            then its modifiers' (composed by :func:`objective`).
        inputs: batch fields that must be filled (beyond the log-probs, the reference
            log-probs and the lengths), e.g. ``margin``, ``chosen_seq_kl``.
        optional_inputs: batch fields that may be filled.
        needs_lengths: True when response lengths (token counts) are required.
        aliases: other accepted names.
        trl_name: the TRL ``loss_type`` with the same semantics, if any.
        summary: one line saying what it is.
        notes: where papers and TRL differ, which variant is the default and why.
        fn: the loss function ``fn(batch, **own_hyperparameters) -> ObjectiveOutput``.
        modifiers: the generic pairwise modifiers (f-divergence, LD-DPO, WPO) it takes, as
            :class:`~prefalign.objectives.modifiers.Modifier` declarations; their
            hyperparameters are part of ``hyperparameters`` and the dispatcher applies them,
            not ``fn``.
        state: running statistics the trainer keeps for it across steps
            (:class:`~prefalign.objectives.state.RunningStat`: BCO's δ, β-DPO's gap moments).
        differences: rows (topic, TRL, paper, prefalign default, other choice) of the
            "where papers and TRL differ" table in docs/objectives.md.
    """

    name: str
    formula: str
    paper: str
    needs_reference: bool
    shape: str
    hyperparameters: tuple[Hyperparameter, ...]
    inputs: frozenset[str] = frozenset()
    optional_inputs: frozenset[str] = frozenset()
    needs_lengths: bool = False
    aliases: tuple[str, ...] = ()
    trl_name: str | None = None
    summary: str = ""
    notes: str = ""
    fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    modifiers: tuple[Any, ...] = ()
    state: tuple[Any, ...] = ()
    differences: tuple[tuple[str, str, str, str, str], ...] = ()
    # a pair without a margin column may take score_chosen − score_rejected as its margin
    # (ODPO's preference strength); False where the margin means something else (MODPO)
    margin_from_scores: bool = True

    @property
    def defaults(self) -> dict[str, Any]:
        """Hyperparameter defaults as a dict."""
        return {h.name: h.default for h in self.hyperparameters}

    @property
    def modifier_names(self) -> frozenset[str]:
        """Names of the hyperparameters that belong to the modifiers."""
        return frozenset(h.name for m in self.modifiers for h in m.hyperparameters)

    def hyperparameter(self, name: str) -> Hyperparameter:
        for h in self.hyperparameters:
            if h.name == name:
                return h
        raise KeyError(name)

    def resolve(self, hyperparameters: dict[str, Any] | None = None) -> "Resolved":
        """Every hyperparameter's value: the defaults overridden by ``hyperparameters``, each
        checked against its declaration. The one place defaults are merged (``compute*`` and
        the trainer both call it). Unknown names raise a ValueError naming close matches.
        Values this objective has resolved already come back as they are: a run resolves
        them once and every micro-batch passes them down."""
        if isinstance(hyperparameters, Resolved) and hyperparameters.objective == self.name:
            return hyperparameters
        out = self.defaults
        for key, value in (hyperparameters or {}).items():
            if key not in out:
                close = difflib.get_close_matches(key, list(out), n=3, cutoff=0.6)
                hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise ValueError(
                    f"objective {self.name!r}: unknown hyperparameter {key!r}.{hint} "
                    f"Hyperparameters: {', '.join(sorted(out)) or 'none'}."
                )
            out[key] = self.hyperparameter(key).check(self.name, value)
        return Resolved(out, objective=self.name)

    @property
    def accepted_inputs(self) -> frozenset[str]:
        """Batch fields a caller may fill: the declared inputs and the modifiers'."""
        accepted = self.inputs | self.optional_inputs
        for m in self.modifiers:
            accepted |= m.inputs
        return accepted

    def reads(self, hyperparameters: dict[str, Any] | None = None) -> frozenset[str]:
        """The batch fields this objective reads with these hyperparameters (resolved or not):
        the log-probs, the reference's, the lengths, its inputs and what its active modifiers
        and running statistics need. The trainer fills exactly these."""
        hps = self.resolve(hyperparameters)
        if self.shape == "pairwise":
            base = {"policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"}
            if self.needs_reference:
                base |= {"ref_chosen_logps", "ref_rejected_logps"}
        elif self.shape == "listwise":
            base = {"policy_logps", "scores", "lengths", "mask"} | ({"ref_logps"} if self.needs_reference else set())
        else:
            base = {"policy_logps", "labels", "lengths"} | ({"ref_logps"} if self.needs_reference else set())
        base |= self.inputs | self.optional_inputs
        for m in self.modifiers:
            base |= m.reads(self, hps)
        return frozenset(base)

    def running_stats(self, hyperparameters: dict[str, Any] | None = None) -> tuple[Any, ...]:
        """The running statistics active with these hyperparameters."""
        hps = self.resolve(hyperparameters)
        return tuple(s for s in self.state if s.active(hps))


_REGISTRY: dict[str, Objective] = {}
_ALIASES: dict[str, str] = {}
# (matches(name), build(name)) for names built on demand rather than registered (mixtures)
_BUILT_ON_DEMAND: list = []


def build_on_demand(matches, build) -> None:
    """Let ``get(name)`` return ``build(name)`` for every name ``matches`` accepts."""
    _BUILT_ON_DEMAND.append((matches, build))


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(objective: Objective) -> Objective:
    """Add an objective to the registry; names and aliases must be unique."""
    if objective.shape not in SHAPES:
        raise ValueError(f"objective {objective.name!r}: shape must be one of {SHAPES}")
    for key in (objective.name, *objective.aliases):
        key = _normalize(key)
        if key in _ALIASES:
            raise ValueError(f"objective name {key!r} is registered twice")
        _ALIASES[key] = objective.name
    _REGISTRY[objective.name] = objective
    return objective


def objective(fn: Callable[..., Any] | None = None, /, **metadata: Any):
    """Decorator form of :func:`register`: ``@objective(name=..., formula=..., ...)``.

    ``hyperparameters`` are the objective's own; the hyperparameters of its ``modifiers`` are
    appended here, once, so no declaration repeats them.
    """

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        meta = dict(metadata)
        own = tuple(meta.pop("hyperparameters", ()))
        mods = tuple(meta.get("modifiers", ()))
        meta["hyperparameters"] = own + tuple(h for m in mods for h in m.hyperparameters)
        register(Objective(fn=f, **meta))
        return f

    return wrap if fn is None else wrap(fn)


def get(name: str) -> Objective:
    """Return the registry entry for ``name`` (canonical name or alias).

    Raises ValueError naming close matches when the name is unknown.
    """
    for matches, build in _BUILT_ON_DEMAND:  # mixtures: "a,b,c", "0.8*a+0.2*b"
        if matches(name):
            return build(name)
    key = _normalize(str(name))
    if key in _ALIASES:
        return _REGISTRY[_ALIASES[key]]
    close = difflib.get_close_matches(key, list(_ALIASES), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown objective {name!r}.{hint} Run `prefalign objectives` or call "
        f"prefalign.objectives.available() to list all {len(_REGISTRY)} objectives."
    )


def available() -> list[Objective]:
    """All registered objectives, sorted by data shape then name."""
    order = {s: i for i, s in enumerate(SHAPES)}
    return sorted(_REGISTRY.values(), key=lambda o: (order[o.shape], o.name))


def _format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return repr(v) if isinstance(v, str) else str(v)


_TOKEN_GROUPS = (
    ("chosen_token_log_sumsq", "token log sum p^2"),
    ("ref_chosen_token_logps", "ref token logps"),
    ("chosen_token_logps", "token logps+masks"),
)


def _needs(o: Objective) -> str:
    names = set(o.inputs)
    parts = ["lengths"] if o.needs_lengths else []
    for key, label in _TOKEN_GROUPS:
        if key in names:
            parts.append(label)
    token_like = {n for n in names if "_token_" in n}
    parts += sorted(names - token_like)
    if {"kl", "kl_logps"} <= set(o.optional_inputs):
        parts.append("kl_logps+ref_kl_logps or kl")
    return ", ".join(parts) or "-"


def table_text() -> str:
    """A printable table of every objective: name, reference, shape, hyperparameters, needs, paper."""
    rows = []
    for o in available():
        own = [
            h
            for h in o.hyperparameters
            if h.name not in o.modifier_names or any(
                h.name == g.name and h.default != g.default for m in o.modifiers for g in m.hyperparameters)
        ]
        hp = ", ".join(f"{h.name}={_format_value(h.default)}" for h in own) or "-"
        name = o.name + (f" ({', '.join(o.aliases)})" if o.aliases else "")
        rows.append((name, "yes" if o.needs_reference else "no", o.shape, hp, _needs(o), o.paper))
    header = ("name (aliases)", "ref", "shape", "hyperparameters (defaults)", "needs", "paper")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1]

    out = [line(header), line(tuple("-" * w for w in widths) + ("-" * 5,))]
    out += [line(r) for r in rows]
    pairwise = [o for o in available() if o.shape == "pairwise"]
    no_wpo = [o.name for o in pairwise if "use_weighting" not in o.modifier_names]
    out += [
        "",
        "Pairwise objectives also take the modifiers f_divergence_type (f-DPO), ld_alpha (LD-DPO; needs "
        "per-token log-probs and masks, and the reference's) and use_weighting (WPO; needs per-token "
        f"log-probs, masks and log sum p^2; not for {', '.join(no_wpo)}). Aliases in parentheses. "
        "See docs/objectives.md.",
    ]
    return "\n".join(out)
