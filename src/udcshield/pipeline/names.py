"""Names shared by the stages, written once: adversarial-set keys, restorer variants, defenses, conditions.

No stage imports another: what two stages both need to name (an adversarial set, a restorer variant,
the clean condition, a transfer cell) lives here.

An adversarial set is identified by :class:`AdvKey` ``(model, variant, attack, budget)``; its string
form ``<model>/<variant>/<attack>/<budget>`` names the array in ``adversarial.zarr`` and ``purified.zarr``
and the shard set in the shard cache. A restorer variant is ``<model>/<variant>`` (variant ``base`` or
``finetuned``); in records it is written ``<model>:<variant>`` (:func:`model_label`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the names module needs no library code at run time
    from udcshield.config import AttackSpec, Params

#: The un-attacked test inputs (a condition of evaluate, a set of purify; budget 0).
CLEAN = "clean"
#: Defenses evaluate scores every restorer under: the bare restorer and purify -> restore.
DEFENSES: tuple[str, ...] = ("none", "purified")
#: Transfer cells: attack ``<attack>@<surrogate model>/<variant>`` is a set crafted on another restorer.
TRANSFER = "@"
#: Record label of the identity "restorer": the raw UDC input scored against its ground truth (clean test
#: images, no defense), the baseline every restorer starts from. No ``:``, so no restorer variant's label.
INPUT_MODEL = "input"


@dataclass(frozen=True, order=True)
class AdvKey:
    """One adversarial set: ``attack`` at integer ``budget`` (units of 1/256) crafted on ``model``/``variant``."""

    model: str
    variant: str
    attack: str
    budget: int

    @property
    def source(self) -> str:
        """The attacked restorer variant, ``<model>/<variant>``."""
        return f"{self.model}/{self.variant}"

    @property
    def name(self) -> str:
        """String form ``<model>/<variant>/<attack>/<budget>`` (array and shard-set name)."""
        return f"{self.model}/{self.variant}/{self.attack}/{self.budget}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str) -> AdvKey:
        """Inverse of :attr:`name`; ValueError naming ``name`` if it has not four parts and an integer budget."""
        parts = str(name).split("/")
        if len(parts) != 4 or not parts[3].isdigit() or not all(parts[:3]):
            raise ValueError(f"{name!r} is not an adversarial set name <model>/<variant>/<attack>/<budget>")
        return cls(parts[0], parts[1], parts[2], int(parts[3]))

    @classmethod
    def of(cls, source: str, attack: str, budget: int) -> AdvKey:
        """Key of ``attack`` at ``budget`` on restorer variant ``source`` = ``<model>/<variant>``."""
        model, variant = split_source(source)
        return cls(model, variant, attack, int(budget))


def split_source(source: str) -> tuple[str, str]:
    """``<model>/<variant>`` -> (model, variant); ValueError naming ``source`` otherwise."""
    parts = str(source).split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{source!r} is not a restorer variant <model>/<variant>")
    return parts[0], parts[1]


def array_name(source: str, attack: str, budget: int) -> str:
    """Name of an adversarial set: ``<model>/<variant>/<attack>/<budget>`` (see :class:`AdvKey`)."""
    return AdvKey.of(source, attack, budget).name


def model_label(source: str) -> str:
    """Record label of restorer variant ``<model>/<variant>``, e.g. ``resunet:base``."""
    return source.replace("/", ":")


def restorers(params: Params) -> Iterator[str]:
    """Every attacked restorer variant ``<model>/<variant>`` (labels of ``train.models`` x ``attack.models``)."""
    for spec in params.train.runs():
        for variant in params.attack.models:
            yield f"{spec.label}/{variant}"


def conditions(params: Params) -> Iterator[tuple[str, AttackSpec, int]]:
    """All (restorer variant, attack spec, budget) combinations the attack stage crafts."""
    for source in restorers(params):
        for spec in params.attack.attacks:
            for budget in spec.budgets:
                yield source, spec, budget


def adversarial_keys(params: Params) -> list[AdvKey]:
    """Every adversarial set of these params, in the attack stage's order."""
    return [AdvKey.of(source, spec.name, budget) for source, spec, budget in conditions(params)]


def condition_label(attack: str, budget: int) -> str:
    """Condition of a record in summaries: ``clean``, or ``<attack>_<budget>``."""
    return CLEAN if attack == CLEAN else f"{attack}_{budget}"


def draw_name(name: str, draw: int) -> str:
    """Array of purifier draw ``draw`` (>= 0) of set ``name`` in ``purified.zarr``: ``name`` itself for draw 0,
    ``draw<k>/<name>`` for the others."""
    return name if draw == 0 else f"draw{draw}/{name}"


def split_draw(array: str) -> tuple[str, int]:
    """Inverse of :func:`draw_name`: (set name, draw)."""
    head, _, rest = array.partition("/")
    if head.startswith("draw") and head[4:].isdigit() and rest:
        return rest, int(head[4:])
    return array, 0
