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
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    models = []
    for metafile in metafiles:
        with open(osp.join(ROOT, metafile)) as f:
            models += yaml.safe_load(f)['Models']
    return models


def counted(model: dict) -> dict:
    """The metafile's figures by their keys' first word ('Parameters', 'FLOPs'), with whether
    the key says they count the backbone alone: {'Parameters': (11.93, True), ...}."""
    return {
        key.split(' ')[0]: (value, 'backbone' in key)
        for key, value in model['Metadata'].items() if key.split(' ')[0] in ('Parameters', 'FLOPs')
    }


def test_no_metafile_claims_results_without_a_checkpoint():
    for model in index_models():
        assert 'Results' not in model or model.get('Weights'), model['Name']


@pytest.mark.parametrize(
    'model', [m for m in index_models() if 'Parameters' in counted(m)], ids=lambda m: m['Name'])
def test_metafile_figures_are_the_models_own(model):
    """Parameters: counted on the model the config builds, or its backbone where the key says
    so; FLOPs: a row of the doc table that measured them (analysis.md, or the generated
    comparison.md), with the same parameter count."""
    from mmengine.registry import MODELS, DefaultScope
    figures = counted(model)
    params_figure, backbone_only = figures['Parameters']
    cfg = Config.fromfile(osp.join(ROOT, model['Config']))
    # on the meta device (no memory, no init), but mmpretrain's ResNet reads a tensor
    device = torch.device('cpu' if cfg.default_scope == 'mmpretrain' else 'meta')
    with DefaultScope.overwrite_default_scope(cfg.default_scope), device:
        built = MODELS.build(
            dict(cfg.model.backbone, init_cfg=None) if backbone_only else cfg.model)
    params = sum(p.numel() for p in built.parameters()) / 1e6
    assert f'{params:.2f}' == f'{params_figure:.2f}', model['Name']
    if 'FLOPs' in figures:
        docs = ''
        for doc in FLOP_DOCS:
            with open(osp.join(ROOT, doc)) as f:
                docs += f.read()
        row = re.escape(f'| {params:.2f} M | {figures["FLOPs"][0]:.2f} G |')
        assert re.search(row, docs), f'{model["Name"]}: no row {row} in {FLOP_DOCS}'
