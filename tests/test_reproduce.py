"""`make reproduce`'s comparison, on hand-made results dicts (no chapter is executed)."""

from __future__ import annotations

import json

import pytest

from minir1.publish import reproduce as rp


def _new(mean, lo, hi, per_seed=(0.5,), unit="rate"):
    return {
        "mean": mean,
        "lo": lo,
        "hi": hi,
        "per_seed": list(per_seed),
        "n": len(per_seed),
        "method": "bootstrap",
        "unit": unit,
    }


def _old(mean, lo, hi, per_seed=(0.5,)):
    return {"mean": mean, "ci95": [lo, hi], "per_seed": list(per_seed)}


def _res(metrics, claims=(("c1", "supported"),), chapter="demo"):
    return {
        "chapter": chapter,
        "profile": "cpu",
        "metrics": metrics,
        "claims": [{"id": i, "verdict": v, "evidence": "e"} for i, v in claims],
    }


def _status(rows):
    return {r.metric: r.status for r in rows}


def test_as_value_reads_all_three_forms():
    assert rp.as_value(3) == rp.Value(3.0)
    assert rp.as_value(_new(0.5, 0.4, 0.6)) == rp.Value(0.5, 0.4, 0.6, (0.5,), "rate")
    assert rp.as_value(_old(0.5, 0.4, 0.6)) == rp.Value(0.5, 0.4, 0.6, (0.5,))
    with pytest.raises(ValueError, match="metrics/x"):
        rp.as_value("0.5", "metrics/x")
    with pytest.raises(ValueError, match="needs 'mean'"):
        rp.as_value({"lo": 1}, "m")


def test_flatten_series_by_slash():
    flat = rp.flatten({"a": 1.0, "s": {"add": _new(0.5, 0.4, 0.6), "mul": {"k1": 2}}})
    assert list(flat) == ["a", "s/add", "s/mul/k1"]


def test_statuses_identical_inside_outside():
    committed = _res(
        {
            "exact": 5.576e6,
            "rate": _new(0.50, 0.40, 0.60, (0.5, 0.5)),
            "moved_inside": _new(0.50, 0.40, 0.60),
            "moved_out": _new(0.50, 0.40, 0.60),
            "plain_moved": 1.0,
            "old_form": _old(0.2, 0.1, 0.3),
            "series": {"add": _old(0.7, 0.6, 0.8), "mul": _old(0.7, 0.6, 0.8)},
        }
    )
    reproduced = _res(
        {
            "exact": 5.576e6,
            "rate": _new(0.50, 0.40, 0.60, (0.5, 0.5)),
            "moved_inside": _new(0.55, 0.45, 0.65),
            "moved_out": _new(0.61, 0.5, 0.7),
            "plain_moved": 1.0000001,
            "old_form": _old(0.2, 0.1, 0.3),
            "series": {"add": _old(0.7, 0.6, 0.8), "mul": _old(0.80, 0.7, 0.9)},
        }
    )
    rows = rp.compare_results(committed, reproduced)
    assert _status(rows) == {
        "verdict: c1": "identical",
        "exact": "identical",
        "rate": "identical",
        "moved_inside": "inside",
        "moved_out": "outside",
        "plain_moved": "outside",
        "old_form": "identical",
        "series/add": "identical",
        "series/mul": "inside",
    }
    assert rp.failed(rows)
    assert rp.counts(rows) == {"identical": 5, "inside": 2, "outside": 2}


def test_interval_edges_are_inside_and_per_seed_change_is_not_identical():
    c = _res({"m": _new(0.5, 0.4, 0.6, (0.4, 0.6))})
    assert _status(rp.compare_results(c, _res({"m": _new(0.6, 0.5, 0.7)})))["m"] == "inside"
    assert _status(rp.compare_results(c, _res({"m": _new(0.4, 0.3, 0.5)})))["m"] == "inside"
    same_mean = _res({"m": _new(0.5, 0.4, 0.6, (0.45, 0.55))})
    assert _status(rp.compare_results(c, same_mean))["m"] == "inside"


def test_one_seed_interval_collapses():
    c = _res({"m": _new(0.5, 0.5, 0.5)})
    assert _status(rp.compare_results(c, _res({"m": _new(0.5001, 0.5001, 0.5001)})))["m"] == "outside"


def test_changed_verdict_fails_even_when_metrics_are_identical():
    m = {"x": _new(0.5, 0.4, 0.6)}
    rows = rp.compare_results(_res(m, [("c1", "supported")]), _res(m, [("c1", "partly supported")]))
    assert _status(rows)["verdict: c1"] == "outside" and rp.failed(rows)


def test_missing_metric_fails_new_metric_does_not():
    rows = rp.compare_results(_res({"a": 1.0, "gone": 2.0}), _res({"a": 1.0, "extra": 3.0}))
    assert _status(rows) == {"verdict: c1": "identical", "a": "identical", "gone": "missing", "extra": "new"}
    assert rp.failed(rows)
    assert not rp.failed(rp.compare_results(_res({"a": 1.0}), _res({"a": 1.0, "extra": 3.0})))


def test_timing_metrics_are_shown_not_failed():
    c = _res(
        {
            "base_train_wall_seconds": 93.7,
            "rl_tokens_per_s": _old(900, 850, 950),
            "base_train_mfu": 0.02,
            "decode_ms_per_step": {"mla": {"64": _old(3.0, 2.9, 3.1)}},
            "latency": _new(1.0, 0.9, 1.1, unit="s"),
            "loss": _new(1.0, 0.9, 1.1, unit=""),
        }
    )
    r = _res(
        {
            "base_train_wall_seconds": 120.0,
            "rl_tokens_per_s": _old(700, 650, 750),
            "base_train_mfu": 0.03,
            "decode_ms_per_step": {"mla": {"64": _old(4.0, 3.9, 4.1)}},
            "latency": _new(2.0, 1.9, 2.1, unit="s"),
            "loss": _new(2.0, 1.9, 2.1, unit=""),
        }
    )
    s = _status(rp.compare_results(c, r))
    assert s == {
        "verdict: c1": "identical",
        "base_train_wall_seconds": "timing",
        "rl_tokens_per_s": "timing",
        "base_train_mfu": "timing",
        "decode_ms_per_step/mla/64": "timing",
        "latency": "timing",
        "loss": "outside",
    }
    # a wall-time ratio is a timing whatever its unit
    assert rp.is_timing("moe_time_per_token_ratio", rp.Value(1.0, unit="ratio"))
    assert not rp.is_timing("rl_pass_at_1", rp.Value(1.0, unit="rate"))
    # arithmetic on published figures is identical, even if its name mentions MFU
    assert (
        _status(rp.compare_results(_res({"v3_implied_mfu_bf16": 0.4}), _res({"v3_implied_mfu_bf16": 0.4})))[
            "v3_implied_mfu_bf16"
        ]
        == "identical"
    )


def test_markdown_table_lists_every_row_and_wall_times():
    rows = rp.compare_results(_res({"a|b": 1.0}), _res({"a|b": 2.0}))
    md = rp.markdown_table(rows, {"demo": (93.8, 120.4)})
    assert "| demo | a\\|b | 1 | 2 | outside |" in md
    assert "| demo | 94 | 120 |" in md and "Counts: identical 1, outside 1" in md


def test_compare_only_cli(tmp_path, capsys):
    """End to end without executing: --compare-only reads <out>/results."""
    committed, out = tmp_path / "committed", tmp_path / "out"
    (out / "results").mkdir(parents=True)
    committed.mkdir()
    res = _res({"x": _new(0.5, 0.4, 0.6)}, chapter="lab")
    res["provenance"] = {"wall_seconds": 90.0}
    (committed / "lab.json").write_text(json.dumps(res))
    (out / "results" / "lab.json").write_text(json.dumps(res))
    args = ["--chapter", "lab", "--committed", str(committed), "--out", str(out), "--compare-only"]
    assert rp.main(args) == 0
    assert "identical" in (out / "table.md").read_text()
    res["metrics"]["x"] = _new(0.7, 0.6, 0.8)
    (out / "results" / "lab.json").write_text(json.dumps(res))
    assert rp.main(args) == 1
    assert json.loads((out / "table.json").read_text())["failed"] is True
    assert rp.main(args[:-1] + ["--profile", "smoke", "--compare-only"]) == 2  # profile mismatch
    assert rp.main(["--chapter", "nope"]) == 2
    assert "recorded with profile 'cpu'" in capsys.readouterr().err


def test_refuses_to_write_into_book(tmp_path):
    with pytest.raises(ValueError, match="book/"):
        rp._check_out(rp.repo_root() / "book" / "results", rp.repo_root())
