"""Config helpers: ``mmdas::`` config paths, and a config's model as mmengine's Runner builds it."""
import copy

from mmengine.config import Config, ConfigDict


def runner_model_cfg(cfg: Config) -> ConfigDict:
    """``cfg.model`` with the top-level ``data_preprocessor`` merged in, as mmengine's Runner
    does (mmpretrain's configs keep their normalisation there): a model built from
    ``cfg.model`` alone would take unnormalised images."""
    model = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return model


def register_config_package() -> None:
    """Let ``_base_ = 'mmdas::das/...'`` resolve (to ``mmdas/.mim/configs``).

    mmengine 0.10.7 resolves ``package::path`` only for the packages of its own table
    (``mmengine.config.utils.MODULE2PACKAGE``): ``import mmdas`` adds itself. mmengine also
    tags every typed dict of such a base with ``_scope_ = package``, assuming that a package is
    one registry scope. mmdas is not: its configs are mmdet, mmpretrain or mmsegmentation
    configs and each declares that framework's ``default_scope``; tagged ``mmdas`` their dicts
    would not build (and a registry searching all three would be ambiguous: ``ResNet``,
    ``RandomFlip``, ``Resize`` exist in several). So ``mmdas::`` paths are resolved without a
    scope of their own, and each dict builds in the scope its config declares.

    A config read before mmdas is imported (mmdet's own ``tools/train.py`` reads it first)
    cannot name ``mmdas::``; our tools, ``mim train mmdas`` and ``mim test mmdas`` import mmdas
    before reading it.
    """
    from mmengine.config import Config
    from mmengine.config import utils as config_utils
    config_utils.MODULE2PACKAGE.setdefault('mmdas', 'mmdas')
    resolve = Config._get_cfg_path
    if getattr(resolve, 'mmdas_unscoped', False):
        return

    def get_cfg_path(cfg_path: str, filename: str):
        path, scope = resolve(cfg_path, filename)
        return path, None if scope == 'mmdas' else scope

    get_cfg_path.mmdas_unscoped = True
    Config._get_cfg_path = staticmethod(get_cfg_path)
