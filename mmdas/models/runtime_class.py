"""Classes made at run time from a host class (``GatedCSPNeXt``, a detector's warm-up
subclass) and how their objects pickle: by the function that makes the class and the host
class, both found by name, so ``torch.save(model)`` and spawned workers work as for the host."""
from typing import Any, Callable, Tuple


def host_class(obj: Any, mixin: type) -> type:
    """The class ``mixin`` was put in front of: the next one in ``obj``'s MRO."""
    mro = type(obj).__mro__
    return mro[mro.index(mixin) + 1]


def bare_instance(make_class: Callable[[type], type], host_cls: type) -> Any:
    """An empty object of ``make_class(host_cls)``, for pickle to fill with its state."""
    cls = make_class(host_cls)
    return cls.__new__(cls)


def reduce_by_maker(obj: Any, protocol: int, make_class: Callable[[type], type],
                    mixin: type) -> Tuple:
    """``obj.__reduce_ex__(protocol)``, rebuilding its class as ``make_class(host_cls)`` (the
    class ``mixin`` was put in front of) where that made it (a user's own subclass of the mixin
    pickles by name, as before)."""
    host_cls = host_class(obj, mixin)
    reduced = object.__reduce_ex__(obj, protocol)
    if type(obj) is not make_class(host_cls):
        return reduced
    return (bare_instance, (make_class, host_cls), *reduced[2:])
