"""mmdas: the DAS attention gate for OpenMMLab.

``import mmdas`` (or ``custom_imports=dict(imports=['mmdas'])`` in a config) checks the framework
versions, registers ``DASGate`` and the gates it is compared with in mmengine's root registry,
the gated backbones in mmdet's, mmpretrain's and mmsegmentation's, and lets mmengine
checkpoints load under torch >= 2.6.
"""
import importlib

from mmengine.utils import digit_version

from .version import FRAMEWORKS, __version__


def _check_framework(distribution: str, module: str, low: str, high: str, needed: bool) -> None:
    """ImportError naming the supported range, if ``module`` is installed at another version
    (or missing while ``needed``)."""
    try:
        version = importlib.import_module(module).__version__
    except ImportError as err:
        if needed:
            raise ImportError(f'mmdas {__version__} needs {distribution}>={low},<{high} '
                              f'(see README, "Install"): {err}') from err
        return  # optional and absent (or broken: mmdas.models.backbones names the error)
    if not digit_version(low) <= digit_version(version) < digit_version(high):
        raise ImportError(f'{distribution}=={version} is incompatible with mmdas {__version__}: '
                          f'install {distribution}>={low},<{high} (see README, "Install").')


for _distribution, (_module, _low, _high, _needed) in FRAMEWORKS.items():
    _check_framework(_distribution, _module, _low, _high, _needed)

from .utils import setup_env  # noqa: E402

setup_env()

from . import apis, datasets, engine, models, ops  # noqa: E402,F401

__all__ = ['__version__', 'apis', 'datasets', 'engine', 'models', 'ops']
