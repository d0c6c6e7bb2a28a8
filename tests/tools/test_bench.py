import pytest

from tools.bench import bench_train


@pytest.mark.parametrize("mode", ["label", "contrastive"])
def test_train_bench_reports_throughput_and_where_time_goes(mode):
    r = bench_train("medclip-tiny", "cpu", batch_size=8, steps=2, size=28, mode=mode)
    assert r["img_s"] > 0 and r["precision"] == "fp32"  # bf16 only on CUDA
    assert r["prep_share"] + r["compute_share"] == pytest.approx(1.0)
