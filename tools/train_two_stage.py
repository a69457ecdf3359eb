"""Run the two-stage DAS detection schedule: backbone warm-up, then full fine-tune.

    python tools/train_two_stage.py WARMUP_CONFIG FINETUNE_CONFIG --work-dir DIR
        [--stage1-load-from CKPT] [--cfg-options k=v ...]

Stage 1 trains the backbone in DIR/stage1_backbone_warmup against frozen heads, so it starts
from a trained detector: CKPT (a trained vanilla Faster R-CNN of the same config family) or the
warm-up config's load_from; without either it stops before building anything. Stage 2 trains
the whole detector in DIR/stage2_finetune from stage 1's final weights. Each stage records its
resolved config and starting checkpoint: a rerun reuses a finished stage and resumes an
interrupted one only when they match; otherwise it stops and names what differs (use a new
--work-dir, or --retrain-stale to move the old stage aside and train it again).
"""
import argparse

from mmengine.config import Config, DictAction

import mmdas  # noqa: F401
from mmdas.engine import run_two_stage


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('warmup_config', help='stage 1: backbone warm-up config')
    parser.add_argument('finetune_config', help='stage 2: full fine-tune config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--stage1-load-from',
        help='checkpoint stage 1 starts from (a trained vanilla detector of the same config '
        "family); default: the warm-up config's load_from")
    parser.add_argument(
        '--retrain-stale',
        action='store_true',
        help='a stage in the work dir trained under another config or start is moved aside '
        '(DIR.stale-<time>) and trained again, instead of stopping the run')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='overrides applied to both stage configs')
    args = parser.parse_args()
    cfgs = [Config.fromfile(path) for path in (args.warmup_config, args.finetune_config)]
    for cfg in cfgs:
        cfg.launcher = 'none'
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
    final = run_two_stage(cfgs, args.work_dir, args.stage1_load_from, args.retrain_stale)
    print(f'final checkpoint: {final}')


if __name__ == '__main__':
    main()
