"""Run the two-stage DAS detection schedule: backbone warm-up, then full fine-tune.

    python tools/train_two_stage.py WARMUP_CONFIG FINETUNE_CONFIG --work-dir DIR
        [--stage1-load-from CKPT] [--resume [CKPT]] [--amp] [--auto-scale-lr]
        [--retrain-stale] [--accept {code,world} ...] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

On many GPUs or nodes: tools/dist_train_two_stage.sh (torchrun) or
tools/slurm_train_two_stage.sh (slurm). Stage 1 trains the backbone in
DIR/stage1_backbone_warmup with every other part frozen, so it starts from a trained detector:
CKPT (a trained vanilla detector of the same config family) or the warm-up config's load_from;
without either it stops before building anything. Stage 2 trains the whole detector in
DIR/stage2_finetune from stage 1's final weights. --amp, --auto-scale-lr and --cfg-options
apply to both stages (each scales its lr by its own auto_scale_lr.base_batch_size).

Each stage records its resolved config, start, code and world: a rerun reuses a finished stage
and resumes an interrupted one only when they match (--resume CKPT picks the checkpoint);
otherwise it stops on every rank and names what differs (use a new --work-dir, --retrain-stale
to move the old stage aside and train it again, or --accept code / world after upgrading mmdas
or changing the number of processes).
"""
import argparse
import sys
from typing import List, Optional

from mmengine.config import Config
from mmengine.dist import get_rank, get_world_size

import mmdas  # noqa: F401
from mmdas.engine import (StaleStageError, add_train_args, apply_train_args, init_distributed,
                          run_two_stage)
from mmdas.engine.stage_record import ACCEPTABLE


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
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
        '--resume',
        nargs='?',
        const='auto',
        help='an interrupted stage resumes anyway (from its latest checkpoint); --resume CKPT '
        "resumes it from CKPT, one of that stage's checkpoints")
    parser.add_argument(
        '--retrain-stale',
        action='store_true',
        help='a stage in the work dir trained under another config or start is moved aside '
        '(DIR.stale-<time>) and trained again, instead of stopping the run')
    parser.add_argument(
        '--accept',
        nargs='+',
        choices=tuple(ACCEPTABLE),
        default=(),
        help='reuse or resume a stage recorded under other code (' + ACCEPTABLE['code'] +
        ') or another world (' + ACCEPTABLE['world'] + '); the acceptance is recorded')
    add_train_args(parser)
    return parser.parse_args(argv)


def stage_configs(args: argparse.Namespace) -> List[Config]:
    """Both stages' configs with the command line's flags applied to each."""
    cfgs = [Config.fromfile(path) for path in (args.warmup_config, args.finetune_config)]
    for cfg in cfgs:
        apply_train_args(cfg, args)
    return cfgs


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfgs = stage_configs(args)
    for cfg in cfgs:
        init_distributed(cfg, args.launcher)  # the process group, before any decision
    resume_from = None if args.resume in (None, 'auto') else args.resume
    try:
        final = run_two_stage(cfgs, args.work_dir, args.stage1_load_from, args.retrain_stale,
                              args.accept, resume_from)
    except StaleStageError as err:
        rank = f' (rank {get_rank()} of {get_world_size()})' if get_world_size() > 1 else ''
        print(f'StaleStageError{rank}: {err}', file=sys.stderr, flush=True)
        sys.exit(1)
    if get_rank() == 0:
        print(f'final checkpoint: {final}')


if __name__ == '__main__':
    main()
