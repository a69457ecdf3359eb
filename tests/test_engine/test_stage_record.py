"""Stage records: a stage is reused or resumed only under the record of its config, start,
code and world; anything else stops with the difference named."""
import json
import os
import os.path as osp

import pytest
import torch

import mmdas  # noqa: F401
from mmdas.engine import run_stage
from mmdas.engine.two_stage import StaleStageError
from utils import tiny_det_cfg as tiny_cfg


@pytest.fixture
def shapes(coco_shapes):
    return coco_shapes


def interrupt(work: str, at_iter: int) -> None:
    """Make ``work`` look like a stage killed after ``at_iter`` iterations."""
    os.remove(osp.join(work, 'stage_done.json'))
    for name in os.listdir(work):
        if name.startswith('iter_') and int(name[5:-4]) > at_iter:
            os.remove(osp.join(work, name))
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, f'iter_{at_iter}.pth'))


@pytest.mark.slow
def test_interrupted_stage_resumes_only_under_the_same_record(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path, iters=2)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 2  # keep iter_1.pth to resume from
    work = str(tmp_path / 'stage')
    run_stage(cfg, work)
    interrupt(work, at_iter=1)
    final = run_stage(cfg, work)
    ckpt = torch.load(final)
    assert ckpt['meta']['iter'] == 2 and final.endswith('iter_2.pth')
    with open(osp.join(work, 'stage_done.json')) as f:
        assert json.load(f)['checkpoint'] == final
    # Interrupted, then asked for with another config: not resumed.
    interrupt(work, at_iter=1)
    changed = cfg.copy()
    changed.optim_wrapper = dict(
        cfg.optim_wrapper, optimizer=dict(cfg.optim_wrapper.optimizer, lr=0.5))
    with pytest.raises(StaleStageError, match=r'optim_wrapper.optimizer.lr: .* then, 0.5 now'):
        run_stage(changed, work)
    # --retrain-stale moves the old stage aside (its checkpoints kept) and trains anew.
    final = run_stage(changed, work, retrain_stale=True)
    assert torch.load(final)['meta']['iter'] == 2
    aside = [p for p in os.listdir(tmp_path) if p.startswith('stage.stale-')]
    assert len(aside) == 1 and osp.isfile(tmp_path / aside[0] / 'iter_1.pth')


@pytest.mark.slow
def test_resume_from_names_the_checkpoint_of_an_interrupted_stage(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path, iters=3)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 3
    work = str(tmp_path / 'stage')
    run_stage(cfg, work)
    interrupt(work, at_iter=2)  # iter_1.pth and iter_2.pth are there, the latest is iter_2
    final = run_stage(cfg, work, resume_from=osp.join(work, 'iter_1.pth'))
    log = open(find_latest_log(work)).read()
    assert 'resumed epoch: 0, iter: 1' in log  # from iter_1, not the latest (iter_2)
    assert torch.load(final)['meta']['iter'] == 3
    interrupt(work, at_iter=2)
    with pytest.raises(RuntimeError, match='not a checkpoint of this unfinished stage'):
        run_stage(cfg, work, resume_from=str(tmp_path / 'elsewhere' / 'iter_1.pth'))


def find_latest_log(work: str) -> str:
    runs = sorted(d for d in os.listdir(work) if osp.isdir(osp.join(work, d)) and d[:1].isdigit())
    return osp.join(work, runs[-1], f'{runs[-1]}.log')


@pytest.mark.slow
def test_a_stage_without_a_record_is_not_reused(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path, iters=2)
    work = str(tmp_path / 'stage')
    run_stage(cfg, work)
    os.remove(osp.join(work, 'stage_record.json'))  # as written by an older mmdas
    with pytest.raises(StaleStageError, match='no stage record'):
        run_stage(cfg, work)


@pytest.mark.slow
def test_a_start_retrained_in_place_makes_the_next_stage_another(shapes, tmp_path):
    """The path a stage starts from is not enough: an earlier stage retrained into the same
    work dir writes other weights under the same name."""
    cfg = tiny_cfg(shapes, tmp_path, iters=2)
    start = run_stage(cfg, str(tmp_path / 'start'))
    run_stage(cfg, str(tmp_path / 'next'), load_from=start)
    changed = cfg.copy()
    changed.optim_wrapper = dict(
        cfg.optim_wrapper, optimizer=dict(cfg.optim_wrapper.optimizer, lr=0.5))
    assert run_stage(changed, str(tmp_path / 'start'), retrain_stale=True) == start  # same name
    with pytest.raises(StaleStageError, match='other content than when this stage started'):
        run_stage(cfg, str(tmp_path / 'next'), load_from=start)


@pytest.mark.slow
def test_a_stage_trained_by_other_code_is_named_and_can_be_accepted(shapes, tmp_path, monkeypatch):
    """After an upgrade (another mmdas source, another framework version) a finished or
    interrupted stage is neither reused nor resumed without a word: the error names the code
    difference, and --accept code reuses it and writes the acceptance into the record."""
    import mmdas.engine.stage_record as records
    cfg = tiny_cfg(shapes, tmp_path, iters=1)
    work = str(tmp_path / 'stage')
    final = run_stage(cfg, work)
    monkeypatch.setattr(records, 'source_digest', lambda root=records.PACKAGE_ROOT: 'edited')
    with pytest.raises(StaleStageError, match=r'code.mmdas_source_sha256: \w+ then, edited now'):
        run_stage(cfg, work)
    assert run_stage(cfg, work, accept=('code', )) == final
    record = json.load(open(osp.join(work, 'stage_record.json')))
    assert record['code']['mmdas_source_sha256'] == 'edited'
    assert record['accepted'][0]['differences'][0].startswith('code.mmdas_source_sha256:')
    assert run_stage(cfg, work) == final  # accepted once, recorded: reused from now on
    with pytest.raises(ValueError, match=r"accept must name sections of \('code', 'world'\)"):
        records.record_differences(record, record, accept=('config', ))


def test_a_record_of_mmdas_0_4_differs_in_code_and_world_only(shapes, tmp_path):
    """v0.4.0 recorded no code or world, and kept the process settings (env_cfg) in its
    config: --accept code world reuses such a stage, and nothing else blocks it."""
    from mmdas.engine.stage_record import record_differences, stage_record
    new = stage_record(tiny_cfg(shapes, tmp_path), 'a.pth')
    config = dict(new['config'], **{'env_cfg.dist_cfg.backend': "'nccl'"})
    old = dict(load_from='a.pth', config=config, inputs=new['inputs'])
    blocking, accepted = record_differences(old, new, accept=('code', 'world'))
    assert blocking == [] and [line.split(':')[0] for line in accepted] == ['code', 'world']
    blocking, _ = record_differences(old, new)
    assert [line.split(':')[0] for line in blocking] == ['code', 'world']


def test_source_digest_follows_the_code_not_the_docs(tmp_path):
    import shutil

    from mmdas.engine.stage_record import PACKAGE_ROOT, source_digest
    copy = tmp_path / 'mmdas'
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns('__pycache__', '.mim'))
    base = source_digest(str(copy))
    assert base == source_digest()
    (copy / 'NOTES.md').write_text('a doc edit')
    assert source_digest(str(copy)) == base
    gate = copy / 'models' / 'plugins' / 'das_gate.py'
    gate.write_text(gate.read_text() + '\n# a code edit\n')
    assert source_digest(str(copy)) != base


def test_presentation_is_not_part_of_a_stage(shapes, tmp_path):
    from mmdas.engine import quiet_cfg
    from mmdas.engine.stage_record import stage_record
    cfg = tiny_cfg(shapes, tmp_path)
    quiet = quiet_cfg(cfg, '[3/7] a title that depends on the number of seeds')
    quiet.work_dir = str(tmp_path / 'elsewhere')
    assert stage_record(quiet, 'a.pth') == stage_record(cfg, 'a.pth')
    assert stage_record(cfg, 'a.pth') != stage_record(cfg, 'b.pth')
