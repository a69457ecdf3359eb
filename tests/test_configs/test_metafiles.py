"""The model index (model-index.yml and its metafiles, read by ``mim search``): no results
without a checkpoint, and the parameter and FLOP figures it carries are the models' own."""
import os.path as osp
import re

import pytest
import torch
import yaml
from mmengine.config import Config

import mmdas  # noqa: F401
from utils import ROOT

#: the docs whose tables hold the FLOP counts, beside the command that measured them
FLOP_DOCS = ('docs/analysis.md', 'docs/comparison.md')


def index_models():
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    return [
        model for metafile in index['Import']
        for model in yaml.safe_load(open(osp.join(ROOT, metafile)))['Models']
    ]


def counted(model: dict) -> dict:
    """The metafile's figures: {'Parameters': ..., 'FLOPs': ...} where it has them."""
    return {
        key.split(' ')[0]: value
        for key, value in model['Metadata'].items() if key.split(' ')[0] in ('Parameters', 'FLOPs')
    }


def test_no_metafile_claims_results_without_a_checkpoint():
    for model in index_models():
        assert 'Results' not in model or model.get('Weights'), model['Name']


@pytest.mark.parametrize(
    'model', [m for m in index_models() if 'Parameters' in counted(m)], ids=lambda m: m['Name'])
def test_metafile_figures_are_the_models_own(model):
    """Parameters: counted on the model the config builds (a detector whole; a classifier's
    backbone, as the FLOPs key says); FLOPs: the doc rows that measured them (analysis.md, and
    the generated comparison.md where the module is compared), all alike."""
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(osp.join(ROOT, model['Config']))
    detector = cfg.default_scope == 'mmdet'
    # a detector on the meta device (no memory, no init); mmpretrain's ResNet reads a tensor
    device = torch.device('meta' if detector else 'cpu')
    with DefaultScope.overwrite_default_scope(cfg.default_scope), device:
        built = MODELS.build(cfg.model if detector else dict(cfg.model.backbone, init_cfg=None))
    params = sum(p.numel() for p in built.parameters()) / 1e6
    figures = counted(model)
    assert f'{params:.2f}' == f'{figures["Parameters"]:.2f}', model['Name']
    if 'FLOPs' in figures:
        # every doc row of this model (its parameter count) gives the same MACs, and one does
        docs = ''.join(open(osp.join(ROOT, doc)).read() for doc in FLOP_DOCS)
        macs = re.findall(rf'\| {params:.2f} M \| ([\d.]+) G \|', docs)
        assert macs and set(macs) == {f'{figures["FLOPs"]:.2f}'}, (model['Name'], macs)
