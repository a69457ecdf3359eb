"""The two-stage schedule at the paper's scale, run for real on the CPU: two processes through
the shipped torchrun and slurm scripts (gloo), one decision per stage taken on rank 0, a
deterministic interruption resumed, and records that know the code and world that trained
each stage."""
import json
import os
import os.path as osp
import signal
import stat
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.engine import StaleStageError, backbone_warmup_cfg, run_two_stage
from utils import ROOT, free_port, load_tool, tiny_det_cfg

TESTS = osp.dirname(osp.abspath(__file__))
#: mmengine's process-group timeout in these runs (seconds): a rank left waiting fails fast.
DIST_TIMEOUT = 120


def launch(script: str, args, env=None, timeout: int = 420) -> subprocess.CompletedProcess:
    """``bash tools/SCRIPT ARGS`` as a user runs it, on the CPU, with ``tests/`` importable (the
    probe hooks) and a free port. It runs in a session of its own: past ``timeout`` the whole
    group is killed (killing torchrun alone would leave its workers running)."""
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join([ROOT, TESTS]),
        CUDA_VISIBLE_DEVICES='-1',
        **(env or {}))
    command = ['bash', osp.join('tools', script)] + [str(a) for a in args]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f'{command} ran past {timeout} s:\n{stdout[-2000:]}{stderr[-2000:]}')
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def probed(cfg: Config) -> Config:
    """``cfg`` with the probe hooks and a short process-group timeout."""
    cfg.custom_imports = dict(imports=['mmdas', 'two_stage_probe'], allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='ProbeHook')]
    cfg.env_cfg.dist_cfg = dict(backend='gloo', timeout=DIST_TIMEOUT)
    return cfg


@pytest.fixture(scope='module')
def two_stage_files(coco_shapes, tmp_path_factory):
    """The demo detector's warm-up (2 iterations) and fine-tune (4) as config files, and an
    untrained DAS detector's weights as stage 1's start."""
    root = tmp_path_factory.mktemp('dist_two_stage')
    warm = probed(backbone_warmup_cfg(tiny_det_cfg(coco_shapes, root, iters=2)))
    fine = probed(tiny_det_cfg(coco_shapes, root, iters=4))
    paths = dict(warm=str(root / 'warmup.py'), fine=str(root / 'finetune.py'))
    warm.dump(paths['warm'])
    fine.dump(paths['fine'])
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(paths['fine']).model)
    paths['start'] = str(root / 'start.pth')
    torch.save(dict(state_dict=model.state_dict()), paths['start'])
    paths['work'] = str(root / 'work')
    return paths


def samples(stage_dir: str, rank: int):
    with open(osp.join(stage_dir, f'samples_rank{rank}.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_two_stage_schedule_on_two_processes(two_stage_files):
    files = two_stage_files
    work = files['work']
    stage1, stage2 = (
        osp.join(work, name) for name in ('stage1_backbone_warmup', 'stage2_finetune'))
    args = [
        files['warm'], files['fine'], 2, '--work-dir', work, '--stage1-load-from', files['start'],
        '--auto-scale-lr'
    ]
    # 1. Both ranks exit right after stage 2's checkpoint at iteration 2 (a killed job).
    run = launch('dist_train_two_stage.sh', args, env=dict(PROBE_EXIT_AFTER='stage2_finetune:2'))
    log = run.stdout + run.stderr
    assert run.returncode != 0, log[-3000:]
    assert osp.isfile(osp.join(stage1, 'stage_done.json')), log[-3000:]
    assert osp.isfile(osp.join(stage2, 'iter_2.pth'))
    assert not osp.isfile(osp.join(stage2, 'stage_done.json'))
    # Each rank trained every iteration of stage 1 (an iteration loop is not halved) on its own
    # share of the images: the two ranks' samples are disjoint.
    ranks = [samples(stage1, rank) for rank in (0, 1)]
    assert [[s['iter'] for s in r] for r in ranks] == [[1, 2], [1, 2]]
    seen = [{i for s in r for i in s['img_ids']} for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 4 and not seen[0] & seen[1]
    # The warm-up froze everything but the backbone: bit-identical to the start.
    start = torch.load(files['start'])['state_dict']
    warm = torch.load(osp.join(stage1, 'iter_2.pth'))['state_dict']
    assert all(torch.equal(v, warm[k]) for k, v in start.items() if not k.startswith('backbone.'))
    assert not torch.equal(start['backbone.layer1.0.conv1.weight'],
                           warm['backbone.layer1.0.conv1.weight'])

    # 2. Relaunched: stage 1 reused and stage 2 resumed from iteration 2, on both ranks.
    run = launch('dist_train_two_stage.sh', args)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    for rank in (0, 1):
        assert f'[two-stage rank {rank}/2] {stage1}: the same stage finished earlier' in log
        assert f'[two-stage rank {rank}/2] {stage2}: resuming the same stage from ' \
            f'{osp.join(stage2, "iter_2.pth")}' in log
        assert [s['iter'] for s in samples(stage2, rank)] == [1, 2, 3, 4]
    final = osp.join(stage2, 'iter_4.pth')
    assert json.load(open(osp.join(stage2, 'stage_done.json')))['checkpoint'] == final
    # One record per stage, written once, with the world that trained it; its lr is the one
    # mmengine's auto_scale_lr gave the optimizer (2 processes x 2 images / base batch 16).
    assert not [d for d in os.listdir(work) if '.stale-' in d]
    cfg = Config.fromfile(files['fine'])
    for stage_dir in (stage1, stage2):
        record = json.load(open(osp.join(stage_dir, 'stage_record.json')))
        assert record['world']['world_size'] == 2 and record['world']['total_batch'] == 4
        assert record['world']['lr'] == pytest.approx(cfg.optim_wrapper.optimizer.lr * 4 / 16)
        assert record['code']['mmdas'] == mmdas.__version__
    trained = torch.load(final, weights_only=False)
    assert trained['optimizer']['param_groups'][0]['initial_lr'] == pytest.approx(
        record['world']['lr'])

    # 3. Launched again: both stages reused on both ranks, nothing trained.
    mtime = osp.getmtime(final)
    run = launch('dist_train_two_stage.sh', args)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert log.count('the same stage finished earlier') == 4 and 'resuming' not in log
    assert osp.getmtime(final) == mtime

    # 4. Another setting: every rank stops with the same message, nothing hangs.
    run = launch('dist_train_two_stage.sh',
                 args + ['--cfg-options', 'optim_wrapper.optimizer.lr=0.5'])
    assert run.returncode != 0
    for rank in (0, 1):
        assert f'StaleStageError (rank {rank} of 2): {stage1} holds a stage that is not' in \
            run.stderr, run.stderr[-3000:]
    assert run.stderr.count('optim_wrapper.optimizer.lr: 0.02 then, 0.5 now') == 2

    # 5. The same stages asked for on one process: another world, named, unless accepted.
    cfgs = [Config.fromfile(files[name]) for name in ('warm', 'fine')]
    for cfg in cfgs:
        cfg.auto_scale_lr.enable = True
    with pytest.raises(StaleStageError, match=r'world.world_size: 2 then, 1 now'):
        run_two_stage(cfgs, work, files['start'])
    assert run_two_stage(cfgs, work, files['start'], accept=('world', )) == final
    record = json.load(open(osp.join(stage1, 'stage_record.json')))
    assert record['world']['world_size'] == 1
    assert 'world.total_batch: 4 then, 2 now' in record['accepted'][0]['differences']

    # 6. dist_test.sh evaluates the final checkpoint on both processes.
    run = launch('dist_test.sh', [files['fine'], final, 2, '--work-dir', osp.join(work, 'test')])
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert 'coco/bbox_mAP' in run.stdout + run.stderr


STUB_SRUN = '''#!/usr/bin/env python3
"""srun as far as these scripts use it: records what it got, then runs --ntasks copies of the
command with slurm's variables (STUB_EXEC=1) or none."""
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ['STUB_LOG'], 'a') as f:
    f.write(json.dumps(dict(argv=args, pythonpath=os.environ.get('PYTHONPATH', ''))) + '\\n')
if os.environ.get('STUB_EXEC') != '1':
    sys.exit(0)
ntasks = int(next(a.split('=')[1] for a in args if a.startswith('--ntasks=')))
command = args[next(i for i, a in enumerate(args) if not a.startswith('-') and
                    args[i - 1] != '-p'):]
procs = [subprocess.Popen(command, env=dict(os.environ, SLURM_PROCID=str(i),
         SLURM_LOCALID=str(i), SLURM_NTASKS=str(ntasks), SLURM_NODELIST='node[1]'))
         for i in range(ntasks)]
sys.exit(max(p.wait() for p in procs))
'''
STUB_SCONTROL = '''#!/usr/bin/env bash
echo "scontrol $*" >> "$STUB_LOG.scontrol"
[ "$1 $2" = "show hostname" ] && echo 127.0.0.1
'''


@pytest.fixture
def slurm_stubs(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', STUB_SRUN), ('scontrol', STUB_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    log = tmp_path / 'srun.jsonl'
    return dict(
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        STUB_LOG=str(log),
        GPUS='2',
        GPUS_PER_NODE='2',
        CPUS_PER_TASK='1',
        SRUN_ARGS='--quotatype=auto --time=10')


def srun_calls(env):
    with open(env['STUB_LOG']) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_slurm_train_runs_two_tasks(slurm_stubs, coco_shapes, tmp_path):
    """slurm_train.sh through a stub srun that starts the two tasks with slurm's variables:
    mmdas's slurm launcher finds its master through scontrol and trains with gloo."""
    cfg = probed(tiny_det_cfg(coco_shapes, tmp_path, iters=2))
    cfg.dump(str(tmp_path / 'cfg.py'))
    work = tmp_path / 'work'
    run = launch(
        'slurm_train.sh', ['partition', 'job', tmp_path / 'cfg.py', work],
        env=dict(slurm_stubs, STUB_EXEC='1', MASTER_PORT=str(free_port())))
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    (call, ) = srun_calls(slurm_stubs)
    assert call['argv'][:10] == [
        '-p', 'partition', '--job-name=job', '--gres=gpu:2', '--ntasks=2', '--ntasks-per-node=2',
        '--cpus-per-task=1', '--kill-on-bad-exit=1', '--quotatype=auto', '--time=10'
    ]
    assert call['argv'][10:] == [
        sys.executable, '-u', 'tools/train.py',
        str(tmp_path / 'cfg.py'), f'--work-dir={work}', '--launcher=slurm'
    ]
    assert call['pythonpath'].split(os.pathsep)[0] == 'tools/..'
    with open(slurm_stubs['STUB_LOG'] + '.scontrol') as f:  # once per task, as mmengine does
        assert f.read().splitlines() == ['scontrol show hostname node[1]'] * 2
    seen = [{i for s in samples(str(work), r) for i in s['img_ids']} for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4 and not seen[0] & seen[1]
    assert osp.isfile(work / 'iter_2.pth')


def test_slurm_two_stage_script_passes_its_arguments(slurm_stubs, tmp_path):
    run = launch(
        'slurm_train_two_stage.sh',
        ['part', 'job', 'warm.py', 'fine.py', 'work', '--stage1-load-from', 'a.pth', '--amp'],
        env=dict(slurm_stubs, GPUS='16', GPUS_PER_NODE='8', SRUN_ARGS=''))
    assert run.returncode == 0, run.stderr
    (call, ) = srun_calls(slurm_stubs)
    assert call['argv'] == [
        '-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
        '--cpus-per-task=1', '--kill-on-bad-exit=1', sys.executable, '-u',
        'tools/train_two_stage.py', 'warm.py', 'fine.py', '--work-dir=work', '--launcher=slurm',
        '--stage1-load-from', 'a.pth', '--amp'
    ]


def test_two_stage_flags_apply_to_both_stages(monkeypatch):
    """--amp gives both stages mmengine's AmpOptimWrapper (dynamic loss scale, as mmdet's
    --amp), --auto-scale-lr enables each stage's own auto_scale_lr; what mmengine then does
    with them on a GPU is mmengine's (it refuses AmpOptimWrapper without an accelerator)."""
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    tool = load_tool('tools/train_two_stage.py')
    warm = osp.join(ROOT, 'configs/das/faster-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py')
    fine = osp.join(ROOT, 'configs/das/faster-rcnn_das-r50_fpn_1x_coco.py')
    args = tool.parse_args([
        warm, fine, '--work-dir', 'w', '--amp', '--auto-scale-lr', '--cfg-options',
        'train_dataloader.batch_size=4', '--launcher', 'pytorch', '--local-rank', '3'
    ])
    cfgs = tool.stage_configs(args)
    assert [cfg.model.type for cfg in cfgs] == ['BackboneWarmup', 'FasterRCNN']
    for cfg in cfgs:
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.loss_scale == 'dynamic'
        assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
        assert cfg.train_dataloader.batch_size == 4 and cfg.launcher == 'pytorch'
    assert os.environ['LOCAL_RANK'] == '3'  # what mmengine reads
    cfg = Config.fromfile(fine)
    cfg.auto_scale_lr = dict(enable=False)
    from mmdas.engine import apply_train_args
    with pytest.raises(ValueError, match='--auto-scale-lr needs auto_scale_lr.base_batch_size'):
        apply_train_args(cfg, args)


def _check_work_dir_on_rank(rank: int, port: int, dirs, results) -> None:
    """One of two gloo processes: check its own ``dirs[rank]`` (as if the same path named
    another disk on each node) and write what it raised."""
    import torch.distributed as dist

    from mmdas.engine.two_stage import check_shared_work_dir
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        check_shared_work_dir(dirs[rank])
        message = 'ok'
    except RuntimeError as err:
        message = str(err)
    with open(osp.join(results, f'rank{rank}.txt'), 'w') as f:
        f.write(message)
    dist.destroy_process_group()


@pytest.mark.slow
def test_a_work_dir_not_shared_by_every_rank_stops_every_rank(tmp_path):
    import torch.multiprocessing as mp
    shared = str(tmp_path / 'shared')
    mp.spawn(
        _check_work_dir_on_rank,
        args=(free_port(), [shared, shared], str(tmp_path)),
        nprocs=2,
        join=True)
    assert [open(tmp_path / f'rank{r}.txt').read() for r in (0, 1)] == ['ok', 'ok']
    local = [str(tmp_path / 'node0'), str(tmp_path / 'node1')]  # one path, two disks
    mp.spawn(_check_work_dir_on_rank, args=(free_port(), local, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        message = open(tmp_path / f'rank{rank}.txt').read()
        assert message.startswith(f'--work-dir {local[rank]} is not shared by every process: '
                                  'rank 1 on ')
