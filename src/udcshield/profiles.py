"""Parameter profiles: ``params.yaml`` composed by Hydra from ``conf/``, as ``dvc exp run`` composes it.

The repository enables DVC's Hydra composition (``.dvc/config``: ``hydra.enabled``). ``conf/config.yaml``
selects one option of the config group ``profile`` (``conf/profile/<name>.yaml``, each ``@package _global_``),
and every ``dvc exp run`` writes the composed result to ``params.yaml`` before it reproduces:

    dvc exp run -S profile=zoo                        # the eight-restorer CPU run
    dvc exp run -S profile=study -S train.iterations=5000

``dvc repro`` reads ``params.yaml`` as it is: the committed file is the ``cpu`` profile, with comments. The
profiles:

- ``cpu``: the default (every key, documented; identical to the committed ``params.yaml``);
- ``tiny``: seconds-long stages on 32-px patches, what the test suite runs;
- ``zoo``: the seven restorers of the study (tiny sizes) and the ResUNet, trained, attacked, purified,
  fine-tuned and evaluated on CPU;
- ``study``: every known setting of Song et al. (arXiv 2402.13629): 256-px crops, paper-size models, PGD at
  1/2/4/8 with 20 iterations, C&W-L2 with 9 binary-search steps and kappa 0, SimBA 1000 iterations at 4/256,
  DDPM purification over 50-100 steps (a GPU run).

:func:`compose_profile` composes a profile in-process, with Hydra override strings (``key=value``), the way
DVC does (``hydra.compose`` under ``initialize_config_dir``); :func:`list_profiles` names those available.
Hydra (``hydra-core``) comes with DVC; it is imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from udcshield.config import ConfigError

__all__ = ["CONF_DIR", "CONFIG_NAME", "GROUP", "compose_profile", "list_profiles"]

#: Hydra config folder (relative to the repository root), primary config name and the profiles' group.
CONF_DIR = Path("conf")
CONFIG_NAME = "config"
GROUP = "profile"


def list_profiles(conf_dir: str | os.PathLike[str] = CONF_DIR) -> list[str]:
    """Names of the profiles in ``<conf_dir>/profile/*.yaml``, sorted (FileNotFoundError naming the folder)."""
    folder = Path(conf_dir) / GROUP
    if not folder.is_dir():
        raise FileNotFoundError(f"no profile folder {folder} (run from the repository root, or pass conf_dir)")
    return sorted(p.stem for p in folder.glob("*.yaml"))


def compose_profile(name: str, overrides: Sequence[str] = (),
                    conf_dir: str | os.PathLike[str] = CONF_DIR) -> dict[str, Any]:
    """The params of profile ``name`` with Hydra ``overrides`` (``"train.iterations=10"``) applied: a plain
    dict, interpolations resolved, exactly what ``dvc exp run -S profile=<name> -S <override>...`` writes to
    ``params.yaml``. It is not validated here: pass it to :func:`udcshield.config.params_from_dict`.

    Raises:
        FileNotFoundError: ``conf_dir`` or its profile folder is missing.
        ConfigError: an unknown profile (the message lists the available ones) or an override Hydra refuses.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    available = list_profiles(conf_dir)
    if name not in available:
        raise ConfigError(f"profile {name!r} is not one of {available} ({Path(conf_dir) / GROUP})")
    try:
        with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
            cfg = compose(config_name=CONFIG_NAME, overrides=[f"{GROUP}={name}", *overrides])
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"profile {name!r} with overrides {list(overrides)}: {first}") from None
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out
