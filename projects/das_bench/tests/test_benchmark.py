"""The benchmarks: one class per benchmark on a shared timing base, and their command line."""
import pytest

from utils import run_main


def test_every_benchmark_is_a_class_on_the_timing_base_and_times_within_one_run(tmp_path):
    from das_bench.benchmark import SECTIONS, Bench, Benchmark, das_config, run_benchmark
    from mmdas.deployment.detector import EXPORTED_DETECTORS
    assert all(issubclass(cls, Benchmark) and cls.name == name for name, cls in SECTIONS.items())
    assert list(SECTIONS)[-2:] == ['onnx_detector', 'onnx_rtmdet']
    # every exported detector family is timed
    timed = [
        c for name in ('onnx_detector', 'onnx_rtmdet') for c in SECTIONS[name].configs.values()
    ]
    assert sorted(das_config(c).model.type for c in timed) == sorted(EXPORTED_DETECTORS)
    calls = []

    class Two(Benchmark):
        name = 'two'

        def cases(self):
            yield 'case', 'forward', dict(a=lambda: calls.append('a'), b=lambda: None), 'a'

    bench = Bench(device='cpu', rounds=3, sizes=[], before=None, out=str(tmp_path))
    rows = Two(bench).rows()
    assert [row[2] for row in rows] == ['a', 'b'] and rows[0][4] == '1.00x'
    assert len(calls) >= 3  # warmed, then three rounds
    with pytest.raises(ValueError, match=r"sections must be among \['op'.*got \['ops'\]"):
        run_benchmark(bench, ['ops'])


def test_the_tool_names_a_revision_that_is_not_there(tmp_path):
    proc = run_main(
        'projects/das_bench/tools/benchmark.py',
        ['--before', 'no-such-rev', '--out', str(tmp_path)])
    assert proc.returncode == 2
    assert '--before no-such-rev: cannot read mmdas/ops/deform_conv_torch.py' in proc.stderr
