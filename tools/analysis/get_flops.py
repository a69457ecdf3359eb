"""Parameters and multiply-adds of a config's model, counting the deformable conv.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--backbone-only] [--plain]
                                        [--cfg-options k=v ...]

Prints the total (multiply-adds, MACs), the gates' share (whichever gate the config names),
and the paper-comparable figure that leaves the deformable convs' own weights and multiply-adds
out (as common FLOP counters did). ``--plain`` counts the same config with the plain backbone;
``--backbone-only`` counts the backbone alone. Works for mmdet and mmpretrain configs.
"""
import argparse
from functools import partial
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction

import mmdas  # noqa: F401
from mmdas.analysis import analyze
from mmdas.apis import init_model, unscaled_det_sample


def build_inputs(model, shape, scope: str):
    """Inputs for ``model``'s tensor-mode forward (a detector also needs data samples)."""
    h, w = shape
    inputs = torch.randn(1, 3, h, w)
    if scope != 'mmdet':
        return model, inputs
    model.forward = partial(model.forward, data_samples=[unscaled_det_sample(h, w)], mode='tensor')
    return model, inputs


def count(cfg: Config, shape, backbone_only: bool, plain: bool):
    model = init_model(cfg, plain_backbone=plain)  # counting needs no checkpoint
    if backbone_only:
        return analyze(model.backbone, torch.randn(1, 3, *shape))
    return analyze(*build_inputs(model, shape, cfg.get('default_scope', 'mmdet')))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='input size; default 800 1333 for mmdet, 224 224 otherwise')
    parser.add_argument('--backbone-only', action='store_true')
    parser.add_argument('--plain', action='store_true', help='the plain backbone instead')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    shape = args.shape or ((800, 1333) if scope == 'mmdet' else (224, 224))
    c = count(cfg, shape, args.backbone_only, args.plain)
    what = 'backbone' if args.backbone_only else 'model'
    print(f'{args.config} ({what}{", plain backbone" if args.plain else ""}), input '
          f'{shape[0]}x{shape[1]}; MACs = multiply-adds')
    print(f'  params              {c.params / 1e6:10.2f} M')
    print(f'  MACs                {c.macs / 1e9:10.2f} G')
    share = 100 * c.gate_macs / max(c.macs, 1)
    gates = f"gates ({', '.join(c.gate_types) or 'none'})"
    print(f'  {gates:<20}{c.gate_params / 1e6:10.2f} M params, '
          f'{c.gate_macs / 1e9:.2f} G MACs ({share:.1f} % of MACs)')
    print(f'  deformable convs    {c.deform_params / 1e6:10.2f} M params, '
          f'{c.deform_macs / 1e9:.2f} G MACs')
    print(f'  paper-comparable (deformable convs uncounted, as common counters do): '
          f'{c.paper_params / 1e6:.2f} M params, {c.paper_macs / 1e9:.2f} G MACs')


if __name__ == '__main__':
    main()
