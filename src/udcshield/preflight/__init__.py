"""Registry-aware checks of validated params, run before any work starts.

:mod:`udcshield.config` is a pure schema: it checks types, ranges and the rules between sections, but it
knows no restorer or attack names. The checks here compare params with the registries, which are the only
lists of names (:mod:`udcshield.models.registry`, :mod:`udcshield.attacks.registry`), and with what the
library modules refuse on construction (restorers, attacks, the PSF simulator, metrics):

- ``simulate`` (:mod:`udcshield.preflight.simulate`): the display layout can realise ``open_ratio``, the
  PSF's FFT stays within the simulator's memory guard, embedded-source photos are bundled photos or paths;
- ``train`` (:mod:`udcshield.preflight.train`): every restorer name is registered and its constructor
  accepts its kwargs, names and values (built on the meta device); ``train.crop_size`` fits the patches;
- ``purifier`` (:mod:`udcshield.preflight.purifier`): ``purifier.crop_size`` fits the patches;
- ``finetune`` (:mod:`udcshield.preflight.finetune`): ``finetune.crop_size`` fits the patches and every
  prefix of ``finetune.trainable`` matches a parameter of every restorer;
- ``attack`` (:mod:`udcshield.preflight.attack`): every attack name is registered (or is ``universal``,
  a function), params set only constructor arguments the attack stage does not set itself, the attack
  accepts their values, and the patches are large enough for it;
- ``evaluate`` (:mod:`udcshield.preflight.evaluate`): every metric can score patches of that size, and the
  ``lpips`` metric's local weights (``evaluate.lpips_weights_path``) exist and load.

"The patches" are the stored pairs, ``simulate.patch_size`` pixels square (:mod:`udcshield.preflight.common`).
Each failure is a :class:`~udcshield.config.ConfigError` naming the dotted key, e.g.
``attack.attacks[0].kwargs.foo``. ``tests/test_load_time_checks.py`` lists every check a stage makes on
params values at run time and proves each one is also made here or by the schema.

This module imports only the schema; a section's check module (and so the registry it needs) is imported
when that section is checked, so a stage's import closure holds the registries of the sections it checks
and no others (:func:`section_module`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from udcshield.config import SECTIONS, ConfigError, Params, load_params

__all__ = ["CHECKED_SECTIONS", "load_checked", "preflight", "section_module"]

#: Sections with registry-aware checks, each in the module ``udcshield.preflight.<section>``.
CHECKED_SECTIONS: tuple[str, ...] = ("simulate", "train", "purifier", "finetune", "attack", "evaluate")


def section_module(section: str) -> str:
    """Dotted name of the module holding the checks of params section ``section``.

    ``udcshield.preflight.<section>`` for the sections in :data:`CHECKED_SECTIONS`; this module for the
    others (they have no registry-aware check). ConfigError for a name that is not a params section.
    """
    if section not in SECTIONS:
        raise ConfigError(f"preflight: unknown params section {section!r} (sections: {', '.join(SECTIONS)})")
    return f"{__name__}.{section}" if section in CHECKED_SECTIONS else __name__


def preflight(params: Params, sections: Iterable[str] | None = None) -> None:
    """Check ``params`` against the registries; ConfigError naming the dotted key on the first failure.

    Args:
        params: params already validated by :func:`udcshield.config.load_params` (or ``params_from_dict``).
        sections: top-level section names whose registry-aware checks run (e.g. ``["train", "attack"]``),
            in params.yaml order; None = all. Sections without such checks are accepted and cost nothing.

    Raises:
        ConfigError: an unknown section name, or a failed check (see the module docstring).
    """
    if sections is None:
        wanted = set(SECTIONS)
    else:
        wanted = {sections} if isinstance(sections, str) else set(sections)
        unknown = sorted(wanted - set(SECTIONS))
        if unknown:
            raise ConfigError(f"preflight: unknown params section(s) {', '.join(unknown)} "
                              f"(sections: {', '.join(SECTIONS)})")
    for name in SECTIONS:
        if name in wanted and name in CHECKED_SECTIONS:
            importlib.import_module(section_module(name)).check(params)


def load_checked(path: str | Path, sections: Iterable[str] | None = None) -> Params:
    """:func:`udcshield.config.load_params` followed by :func:`preflight` of ``sections`` (None = all).

    Errors of either step are ConfigErrors prefixed with ``path``, like those of ``load_params``.
    """
    params = load_params(path)
    try:
        preflight(params, sections)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return params
