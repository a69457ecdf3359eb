"""mmdas: the DAS attention gate for OpenMMLab.

``import mmdas`` (or ``custom_imports=dict(imports=['mmdas'])`` in a config) registers
``DASGate`` in mmengine's root registry, ``DASResNet`` / ``DASMobileNetV2`` in mmdet's and
mmpretrain's, and lets mmengine checkpoints load under torch >= 2.6.
"""
import mmcv
import mmengine
from mmengine.utils import digit_version

from .version import __version__

MMCV_RANGE = ('2.0.0', '2.2.0')
MMENGINE_RANGE = ('0.10.0', '1.0.0')


def _check_version(name: str, version: str, lo: str, hi: str) -> None:
    if not digit_version(lo) <= digit_version(version) < digit_version(hi):
        raise ImportError(f'{name}=={version} is incompatible with mmdas {__version__}: '
                          f'install {name}>={lo},<{hi} (see README, "Install").')


_check_version('mmcv', mmcv.__version__, *MMCV_RANGE)
_check_version('mmengine', mmengine.__version__, *MMENGINE_RANGE)

from .utils import allow_mmengine_checkpoints  # noqa: E402

allow_mmengine_checkpoints()

from . import datasets, engine, models, ops  # noqa: E402,F401

__all__ = ['__version__', 'datasets', 'engine', 'models', 'ops']
