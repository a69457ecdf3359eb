"""The project's tools/compare_gates.py end to end at a tiny scale (the real run is `make compare`),
and the comparison's statistics against scipy's own."""
import json
import os.path as osp
import re
import shutil

import pytest

from utils import ROOT, run_main


@pytest.mark.slow
def test_compare_gates_follows_the_protocol_and_reports_what_it_measured(tmp_path, cls_shapes):
    out = str(tmp_path / 'out')
    args = [
        '--sections', 'cost', 'latency', 'growth', 'accuracy', '--gates', 'none', 'DAS', 'wide',
        'DANet', '--seeds', '0', '1', '--lr-grid', '0.001', '0.004', '--short-epochs', '1',
        '--epoch-grid', '1', '2', '--val-interval', '1', '--rounds', '1', '--growth-sizes', '8',
        '16', '24', '--data-root', cls_shapes, '--data-set', 'classification', '--out', out
    ]
    proc = run_main('projects/das_bench/tools/compare_gates.py', args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.load(open(osp.join(out, 'compare_gates.json')))
    assert set(result['cost']) == {'none', 'DAS', 'wide', 'DANet'}
    assert result['latency']['none']['ratio'] == 1.0
    assert result['cost']['DAS']['macs'] > result['cost']['none']['macs']
    assert set(result['growth']) == {'DAS', 'DANet'}  # none and wide have no module to time
    assert set(result['accuracy']) == {'none', 'DAS', 'wide', 'DANet'}
    for name, run in result['accuracy'].items():
        # the rate: the best val of the grid at the short schedule (the first of equals)
        val = run['val_top1_by_lr']
        assert set(val) == {'0.001', '0.004'}
        assert run['lr'] == float(max(val, key=val.get))
        # the length: the best val at that rate (the shortest of equals), the short run shared
        by_epochs = run['val_top1_by_epochs']
        assert by_epochs['1'] == val[f"{run['lr']:g}"]
        assert run['epochs'] == int(max(by_epochs, key=by_epochs.get))
        # each run's logged curve ends at the val its checkpoint scores
        for length, curve in run['val_curves'].items():
            assert set(curve) == {str(e) for e in range(1, int(length) + 1)}
            assert curve[length] == by_epochs[length]
        # every seed at the chosen rate and length, scored on test: 16 images, whole counts
        assert set(run['test_top1']) == {'0', '1'}
        assert all(v * 16 / 100 == pytest.approx(round(v * 16 / 100))
                   for v in run['test_top1'].values())
        assert osp.isfile(
            osp.join(out, 'accuracy', f"{name}_lr{run['lr']:g}_ep{run['epochs']}_seed1",
                     'console.log'))
    table = open(osp.join(out, 'compare_gates.md')).read()
    assert '| DAS | Salajegheh et al. 2023 |' in table
    assert '(n=2)' in table and '(reference)' in table
    assert re.search(r'\| DAS \| 0\.00[14] \| [12] \| .* \| [+-]\d+\.\d \[', table)
    assert osp.getsize(osp.join(out, 'compare_gates.png')) > 10_000

    # --report rewrites the tables from the JSON alone, into the docs between the markers
    from das_bench.comparison_report import BEGIN, END
    docs = tmp_path / 'docs' / 'comparison.md'
    docs.parent.mkdir()
    docs.write_text(f'# Comparison\n\nabove\n\n{BEGIN}\nold figures\n{END}\n\nbelow\n')
    shutil.rmtree(osp.join(out, 'accuracy'))  # nothing is trained again
    proc = run_main(
        'projects/das_bench/tools/compare_gates.py',
        ['--report', '--out', out, '--docs', str(docs)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = docs.read_text()
    assert 'old figures' not in written and 'above' in written and 'below' in written
    assert table.strip() in written
    assert osp.isfile(tmp_path / 'docs' / 'compare_gates.png')
    assert json.load(open(osp.join(out, 'compare_gates.json'))) == result


def test_paired_interval_is_scipys_paired_t_interval():
    from scipy import stats

    from das_bench.comparison import paired_interval, paired_with
    das, plain = {'0': 91.0, '1': 88.5, '2': 90.0, '3': 86.0, '4': 92.5}, \
        {'0': 85.0, '1': 87.0, '2': 84.5, '3': 86.5, '4': 88.0}
    mean, half = paired_interval(paired_with(das, plain))
    interval = stats.ttest_rel(list(das.values()), list(plain.values())).confidence_interval()
    assert (mean - half, mean + half) == pytest.approx((interval.low, interval.high))
    assert paired_with({'1': 2.0, '0': 1.0, '5': 9.0}, {'0': 0.5, '1': 1.0}) == [0.5, 1.0]


def test_the_capacity_control_is_within_five_percent_of_das(scope):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    from das_bench import CLS_CONFIGS
    from das_bench.comparison import variant_cfg

    def params(cfg: Config) -> int:
        with scope('mmpretrain'):
            return sum(p.numel() for p in MODELS.build(cfg.model).parameters())

    das = params(Config.fromfile(CLS_CONFIGS['das']))
    wide = params(variant_cfg(CLS_CONFIGS['das'], 'wide'))
    assert (das, wide) == (761_648, 792_833)  # the figures the variant's comment states
    assert abs(wide / das - 1) < 0.05
    assert params(variant_cfg(CLS_CONFIGS['das'], 'none')) < das < wide
    with pytest.raises(ValueError, match='name must be one of'):
        variant_cfg(CLS_CONFIGS['das'], 'wider')


def test_a_section_measured_in_two_runs_names_each_runs_sources():
    """Modules added to a store later (other code, another day, another thread count) are not
    reported under the environment of the last run alone."""
    from das_bench.comparison_report import markdown

    def run(top1: list, sources: str, date: str, threads: int = 2) -> dict:
        return dict(
            lr=0.001,
            epochs=2,
            val_top1_by_epochs={
                '1': 50.0,
                '2': 60.0
            },
            test_top1={
                str(seed): v
                for seed, v in enumerate(top1)
            },
            measured_with=dict(sources=sources, date=date, threads=threads))

    old, new = ('aaaaaaaaaaaa', '2026-12-01'), ('bbbbbbbbbbbb', '2026-12-05')
    meta = dict(mmdas='0.5.0', mmdas_source_sha256='b' * 64, torch='2', threads=2, date=new[1])
    data = dict(
        accuracy=dict(
            none=run([80.0, 82.0], *old), DAS=run([85.0, 83.0], *old), ECA=run([81.0], *new)),
        meta=dict(accuracy=meta))
    text = markdown(data)
    assert ('(sources aaaaaaaaaaaa, 2026-12-01, 2 threads: none, DAS; '
            'sources bbbbbbbbbbbb, 2026-12-05, 2 threads: ECA)' in text), text
    data['accuracy']['ECA'] = run([81.0], *old, threads=1)  # same code and day, one thread
    assert ('(sources aaaaaaaaaaaa, 2026-12-01, 2 threads: none, DAS; '
            'sources aaaaaaaaaaaa, 2026-12-01, 1 thread: ECA)' in markdown(data))
    del data['accuracy']['ECA']
    assert '(sources aaaaaaaaaaaa, 2026-12-01, 2 threads)' in markdown(data)
    del data['accuracy']['DAS']['measured_with']['threads']  # an older record: the meta's count
    assert '(sources aaaaaaaaaaaa, 2026-12-01, 2 threads)' in markdown(data)


def test_the_detection_section_refuses_the_width_control_before_training(tmp_path):
    """`make compare` runs the detection section over every module that inserts into the plain
    detector; naming the width control there is refused by name before any data or training."""
    from das_bench.comparison import DETECTION_VARIANTS, VARIANTS, Store, detection_section
    assert set(DETECTION_VARIANTS) == set(VARIANTS) - {'wide'}
    with pytest.raises(ValueError, match=r"\['wide'\] cannot start from the shared plain"):
        detection_section(['DAS', 'wide'], [0], str(tmp_path / 'det'), str(tmp_path / 'cls'),
                          str(tmp_path), Store(str(tmp_path / 'store.json')))
    assert not (tmp_path / 'det').exists()


def test_the_docs_tables_are_the_shipped_stores_own(tmp_path):
    """docs/comparison.md's generated part is what --report writes from docs/compare_gates.json:
    a figure edited by hand, or a store updated without regenerating, fails here."""
    from das_bench.comparison_report import markdown, write_between_markers
    with open(osp.join(ROOT, 'docs', 'compare_gates.json')) as f:
        data = json.load(f)
    shipped = osp.join(ROOT, 'docs', 'comparison.md')
    regenerated = tmp_path / 'comparison.md'
    shutil.copy(shipped, regenerated)
    write_between_markers(str(regenerated), markdown(data))
    with open(shipped) as f:
        assert regenerated.read_text() == f.read()


def test_compare_gates_puts_sda_in_place_of_the_plain_backbone():
    from das_bench.comparison import backbone, with_variant
    das = dict(type='DASResNet', depth=18, base_channels=16, gate=dict(type='DASGate'))
    assert with_variant(das, 'SDA') == dict(type='SDAResNet', depth=18, base_channels=16)
    assert type(backbone('SDA', depth=18)).__name__ == 'SDAResNet'
