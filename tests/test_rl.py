import pytest

from minir1.experiments import rl
from minir1.results import metric


def _metrics(strict_gain, lenient_gain, rl_k64=0.5, base_k64=0.5):
    m = {
        "base_pass_at_1": metric([0.1, 0.1, 0.1]), "rl_pass_at_1": metric([0.1 + strict_gain] * 3),
        "base_pass_at_1_lenient": metric([0.2] * 3), "rl_pass_at_1_lenient": metric([0.2 + lenient_gain] * 3),
        "base_mean_len": metric([10.0] * 3), "rl_mean_len": metric([20.0] * 3),
        "gain_pass_at_1": metric([strict_gain - 0.01, strict_gain, strict_gain + 0.01]),
        "gain_pass_at_1_lenient": metric([lenient_gain - 0.01, lenient_gain, lenient_gain + 0.01]),
        "base_pass_at_k": {"1": 0.1, "64": base_k64}, "base_pass_at_k_lenient": {"1": 0.2, "64": base_k64},
        "rl_pass_at_k_lenient": {"1": metric([0.3] * 3), "64": metric([rl_k64 - 0.01, rl_k64, rl_k64 + 0.01])},
        "base_params": 1_000_000,
    }
    return m


@pytest.mark.parametrize("strict,lenient,verdict", [(0.3, 0.2, "supported"), (0.3, 0.0, "partly supported"),
                                                     (0.0, 0.0, "not supported")])
def test_verdict_rules(strict, lenient, verdict):
    out = rl.verdicts(_metrics(strict, lenient), rl.rl_config("cpu"))[0]
    assert out["id"] == "rl-vanilla-to-reasoner" and out["verdict"] == verdict
    assert "pass@1" in out["evidence"] and "addition" in out["evidence"]


def test_verdict_says_whether_rl_expanded():
    expanded = rl.verdicts(_metrics(0.3, 0.2, rl_k64=0.9, base_k64=0.5), rl.rl_config("cpu"))[0]["evidence"]
    sharpened = rl.verdicts(_metrics(0.3, 0.2, rl_k64=0.5, base_k64=0.8), rl.rl_config("cpu"))[0]["evidence"]
    assert "RL expanded" in expanded and "did not expand" in sharpened


def test_profiles():
    assert rl.rl_config("smoke").grpo.steps < rl.rl_config("cpu").grpo.steps
    with pytest.raises(ValueError, match="profile"):
        rl.rl_config("bogus")
