"""Explicit decorator registry of image restorers, plus the shared input check.

A restorer maps a tone-mapped UDC image batch ``(B, 3, H, W)`` in [0, 1] to a restored batch of the same
shape (values near [0, 1], not clamped). Every restorer is registered by name with
:func:`register_restorer`; :func:`create_restorer` builds one from its name and keyword arguments and
stamps it with ``restorer_name`` and ``init_kwargs`` so :mod:`udcshield.models.checkpoint` can save it
and rebuild it later (Song et al., arXiv 2402.13629, evaluate several restorers side by side).

No folder scanning: a model is available exactly when the module defining it has been imported
(``udcshield.models`` imports the built-in ones). Restorers from outside the package are named in two
more ways (:func:`resolve_restorer`), looked up only when asked for:

- an entry point of the group ``udcshield.restorers`` (``name = "pkg.mod:factory"`` in the
  ``[project.entry-points."udcshield.restorers"]`` table of a distribution's ``pyproject.toml``);
- a factory reference ``"module:callable"`` (``callable`` may be dotted, ``Class.build``), imported with
  :func:`importlib.import_module`. Such a reference must be an ``nn.Module`` subclass or a function whose
  return annotation is one, so a reference read back from a checkpoint's ``config.json`` cannot make
  :func:`create_restorer` call an arbitrary function (``subprocess:run``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

from udcshield.config.training import FACTORY_REFERENCE

__all__ = ["register_restorer", "create_restorer", "restorer_arguments", "list_restorers", "check_image_batch",
           "init_from_generator", "resolve_restorer", "is_factory_reference", "ENTRY_POINT_GROUP",
           "entry_point_restorers"]

_RESTORERS: dict[str, Callable[..., nn.Module]] = {}
#: Python entry-point group through which installed distributions declare restorers.
ENTRY_POINT_GROUP = "udcshield.restorers"

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_restorer(name: str) -> Callable[[F], F]:
    """Decorator registering a restorer class or factory under ``name``.

    Restorers map (B, 3, H, W) images in [0, 1] to the same shape (e.g. Zhou et al. 2021 ResUNet).

    The decorated callable must accept only keyword-compatible, JSON-serializable arguments (they are
    written to ``config.json`` when the model is saved). Registering a name twice raises ``ValueError``.

    Example::

        @register_restorer("my_net")
        class MyNet(nn.Module):
            def __init__(self, width: int = 16) -> None: ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"restorer name must be a non-empty string, got {name!r}")

    def decorator(factory: F) -> F:
        if name in _RESTORERS:
            raise ValueError(f"restorer {name!r} is already registered (by {_RESTORERS[name]!r})")
        _RESTORERS[name] = factory
        return factory

    return decorator


def list_restorers() -> list[str]:
    """Sorted names of all registered restorers (e.g. "resunet", Zhou et al. 2021)."""
    return sorted(_RESTORERS)


def is_factory_reference(name: str) -> bool:
    """Whether ``name`` has the form ``"module:callable"`` (dotted identifiers on both sides of one ``:``)."""
    return isinstance(name, str) and FACTORY_REFERENCE.fullmatch(name) is not None


def entry_point_restorers() -> dict[str, str]:
    """Restorers declared by installed distributions: entry-point name -> ``"module:callable"`` target,
    from the group ``udcshield.restorers`` (nothing is imported)."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _returns_module(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` is an ``nn.Module`` subclass or a function annotated to return one."""
    if isinstance(factory, type):
        return issubclass(factory, nn.Module)
    try:
        hint = typing.get_type_hints(factory).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate is no declaration
        return False
    return isinstance(hint, type) and issubclass(hint, nn.Module)


def _import_factory(reference: str, what: str) -> Callable[..., nn.Module]:
    """The object ``module:callable`` names; ValueError naming ``what`` when it cannot be imported."""
    module_name, _, attribute = reference.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure of the user's module is reported the same way
        raise ValueError(f"{what}: cannot import module {module_name!r} ({type(err).__name__}: {err}); "
                         "install the package that provides it or put it on PYTHONPATH") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what}: module {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{what}: {reference!r} is a {type(obj).__name__}, not a callable restorer factory")
    return obj


def resolve_restorer(name: str) -> Callable[..., nn.Module]:
    """The factory (class or function) of restorer ``name``; the factory maps keyword arguments to an
    ``nn.Module`` taking (B, 3, H, W) images in [0, 1] to the same shape.

    ``name`` is, in this order of lookup: a registered name (:func:`register_restorer`); an entry point
    of the group ``udcshield.restorers`` (loaded on first use); or a factory reference
    ``"module:callable"``, imported, which must be an ``nn.Module`` subclass or a function annotated
    ``-> nn.Module`` (or a subclass).

    Raises:
        ValueError: an unknown name (the message lists the registered and entry-point names), a module
            that does not import, a missing attribute, or a reference that is not a restorer factory.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"restorer name must be a non-empty string, got {name!r}")
    if name in _RESTORERS:
        return _RESTORERS[name]
    if is_factory_reference(name):
        factory = _import_factory(name, f"restorer {name!r}")
        if not _returns_module(factory):
            raise ValueError(f"restorer {name!r}: {name.partition(':')[2]!r} must be an nn.Module subclass or a "
                             "function annotated to return one (-> nn.Module), so that only declared restorer "
                             "factories are ever called")
        return factory
    declared = entry_point_restorers()
    if name in declared:
        return _import_factory(declared[name], f"restorer {name!r} (entry point {declared[name]!r} of group "
                                               f"{ENTRY_POINT_GROUP!r})")
    known = list_restorers() + sorted(set(declared) - set(_RESTORERS))
    raise ValueError(f"unknown restorer {name!r}; available: {', '.join(known) or '(none)'}, an entry point of "
                     f"group {ENTRY_POINT_GROUP!r}, or a factory reference 'module:callable'")


@contextmanager
def init_from_generator(generator: torch.Generator | None) -> Iterator[None]:
    """Context in which module constructors draw their initial weights from ``generator``.

    PyTorch and diffusers layers initialize from the global RNG; inside this context that RNG is
    reseeded from one draw of ``generator`` and restored on exit, so initial weights depend only on the
    explicit generator and the caller's global RNG is untouched. ``None`` does nothing: weights then
    come from the global RNG as usual, so an enclosing ``udcshield.seeding.seeded_init(seed, stage)``
    decides them. Construct on CPU (only the CPU RNG is forked). Reproducible initialization matters for the
    repeated training runs of Song et al., arXiv 2402.13629.
    """
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def create_restorer(name: str, *, generator: torch.Generator | None = None, size: str | None = None,
                    **kwargs: Any) -> nn.Module:
    """Build the restorer registered as ``name`` with keyword arguments ``kwargs``.

    ``size`` picks a preset from :mod:`udcshield.models.sizes`: ``"paper"`` (parameter count within 10 %
    of the published one), ``"tiny"`` (about 30 k parameters or fewer, for tests and CPU runs) or
    ``"default"`` (the constructor's defaults); ``kwargs`` override the preset's values. ``None`` (the
    default) uses ``kwargs`` as given, exactly like ``"default"``. The resolved arguments, not the size
    name, end up in ``init_kwargs``.

    The returned module (on CPU, train mode) maps ``(B, 3, H, W)`` images in [0, 1] to restored images
    of the same shape. It carries ``restorer_name`` (str) and ``init_kwargs`` (dict with defaults
    filled in), which is what :func:`udcshield.models.checkpoint.save_checkpoint` writes. Initial
    weights come from ``generator``; with ``None`` from the global RNG, which callers pin with
    ``udcshield.seeding.seeded_init(seed, stage)`` (see :func:`init_from_generator`).

    ``name`` may also be an entry point of the group ``udcshield.restorers`` or a factory reference
    ``"module:callable"`` (:func:`resolve_restorer`); ``restorer_name`` is then that name, from which
    :func:`udcshield.models.checkpoint.load_checkpoint` rebuilds the model.

    Raises:
        ValueError: unknown ``name`` (the message lists the registered ones), or a factory that does not import.
        TypeError: an argument the restorer does not accept, or one that is not JSON-serializable.
        ValueError: a ``size`` the restorer has no preset for (the message lists the available ones).
    """
    init_kwargs = restorer_arguments(name, size=size, **kwargs)
    factory = resolve_restorer(name)
    with init_from_generator(generator):
        model = factory(**init_kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"restorer {name!r} factory returned {type(model).__name__}, not an nn.Module")
    model.restorer_name = name
    model.init_kwargs = init_kwargs
    return model


def restorer_arguments(name: str, *, size: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """The constructor arguments :func:`create_restorer` would pass to restorer ``name``, without building it.

    ``size`` and ``kwargs`` as in :func:`create_restorer`; the result has the defaults filled in (it is
    the model's ``init_kwargs``). Cheap: only the factory's signature is inspected, so params can be
    checked before any work.

    Raises:
        ValueError: unknown ``name`` (see :func:`resolve_restorer`) or unknown ``size``.
        TypeError: an argument the restorer does not accept, or one that is not JSON-serializable.
    """
    factory = resolve_restorer(name)
    if size is not None:
        from udcshield.models.sizes import SIZES, resolve_size

        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; expected one of {list(SIZES)}")
        kwargs = resolve_size(name, size, kwargs)
    signature = inspect.signature(factory)
    try:
        bound = signature.bind(**kwargs)
    except TypeError as err:
        accepted = [p for p in signature.parameters if p != "self"]
        raise TypeError(f"restorer {name!r}: {err}; accepted arguments: {accepted}") from None
    bound.apply_defaults()
    init_kwargs = dict(bound.arguments)
    try:
        json.dumps(init_kwargs)
    except TypeError as err:
        raise TypeError(f"restorer {name!r}: arguments must be JSON-serializable ({err})") from None
    return init_kwargs


def check_image_batch(x: torch.Tensor, name: str = "images", *, finite: bool = True) -> None:
    """Raise a clear error unless ``x`` is a float ``(B, 3, H, W)`` image batch (finite if ``finite``).

    Images are tone-mapped UDC images (Zhou et al. 2021; DISCNet convention of Feng et al. 2021) in
    [0, 1]; the value range is not enforced here (restorer outputs may leave [0, 1] slightly); the finiteness check
    synchronizes with the device, so hot loops may pass ``finite=False``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
