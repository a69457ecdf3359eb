"""tools/analysis/compare_gates.py end to end at a tiny scale (the real run is `make compare`)."""
import json
import os.path as osp
import re

import pytest

from utils import run_tool


def test_compare_gates_writes_the_table_and_plot_it_measured(tmp_path, cls_shapes):
    data = cls_shapes
    out = str(tmp_path / 'out')
    args = [
        '--sections', 'cost', 'latency', 'growth', 'accuracy', '--gates', 'none', 'DAS', 'CBAM',
        'DANet', '--seeds', '0', '1', '--epochs', '1', '--lr-grid', '0.001', '0.002', '--rounds',
        '1', '--growth-sizes', '8', '16', '24', '--data-root', data, '--out', out
    ]
    proc = run_tool('tools/analysis/compare_gates.py', args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.load(open(osp.join(out, 'compare_gates.json')))
    assert set(result['cost']) == {'none', 'DAS', 'CBAM', 'DANet'}
    assert result['latency']['none']['ratio'] == 1.0
    assert result['cost']['DAS']['macs'] > result['cost']['CBAM']['macs'] > \
        result['cost']['none']['macs']
    assert set(result['growth']) == {'DAS', 'CBAM', 'DANet'}  # 'none' has no module to time
    for name, runs in result['accuracy'].items():
        assert set(runs) == {'0', '1'}
        # top-1 over the 16 test images: a whole number of them right
        assert all(r['top1'] * 16 / 100 == pytest.approx(round(r['top1'] * 16 / 100))
                   for r in runs.values())
        # every module tried at the same grid on seed 0's val split; seed 1 at the choice
        val = runs['0']['val_top1_by_lr']
        assert set(val) == {'0.001', '0.002'}
        assert runs['0']['lr'] == runs['1']['lr'] == float(max(val, key=val.get))
        assert osp.isfile(
            osp.join(out, 'accuracy', f"{name}_lr{runs['1']['lr']:g}_seed1", 'console.log'))
    table = open(osp.join(out, 'compare_gates.md')).read()
    assert table.count('\n') == 2 + 4 and '| DAS | Salajegheh et al. 2023 |' in table
    assert '(n=2,' in table  # mean and spread over the two seeds
    assert osp.getsize(osp.join(out, 'compare_gates.png')) > 10_000
    # The console shows progress bars and the table, not mmengine's logs (they are in files).
    assert 'Config:' not in proc.stdout
    assert re.search(r'\[12/12\] DANet, lr 0\.00[12], seed 1', proc.stdout)
    assert ' at lr ' in table
