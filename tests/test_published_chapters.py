"""Nothing broken on a published chapter: no warnings, tracebacks, machine paths, empty tables or
loader/progress noise in the outputs of ``book/chapters/*.ipynb`` (:mod:`minir1.publish.outputs`).

The checker itself is tested on small synthetic notebooks holding each kind of problem, so it is
tested even while the executed chapters are stale.
"""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from minir1.publish.outputs import KINDS, output_problems, scan_folder, scan_notebook
from minir1.utils import repo_root

CHAPTERS = repo_root() / "book" / "chapters"


@pytest.mark.parametrize("path", sorted(CHAPTERS.glob("*.ipynb")), ids=lambda p: p.name)
def test_published_chapter_outputs_are_clean(path):
    problems = scan_notebook(path)
    shown = "\n".join(f"  {p}" for p in problems[:20])
    assert not problems, (
        f"{path.name}: {len(problems)} output problem(s) a reader would see; fix their cause in the code, "
        f"then re-execute the chapter (make chapters CHAPTER=...):\n{shown}"
    )


# ----------------------------------------------------------------------------- the checker
def _stream(text: str, name: str = "stderr"):
    return new_output("stream", name=name, text=text)


def _html_table(rows: int) -> str:
    body = "".join(f"<tr><th>{i}</th><td>{i}</td></tr>" for i in range(rows))
    return f'<table class="dataframe"><thead><tr><th></th><th>value</th></tr></thead><tbody>{body}</tbody></table>'


# One output per kind of problem, as executed chapters really showed them.
BAD = {
    "warning": [
        _stream("/x/plots.py:420: RuntimeWarning: Mean of empty slice\n  ax.plot(...)\n"),
        _stream("FutureWarning: `torch_dtype` is deprecated! Use `dtype` instead!\n"),
        _stream("UserWarning: To copy construct from a tensor, use sourceTensor.clone()\n", name="stdout"),
    ],
    "error": [
        new_output("error", ename="ValueError", evalue="invalid literal for int() with base 10: ','", traceback=[]),
        _stream('Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: 3\n'),
    ],
    "path": [
        _stream("wrote /work/main/.artifacts/results-cpu/rl.json\n", name="stdout"),
        new_output("execute_result", data={"text/plain": "'/home/reader/minir1/book'"}),
        _stream("/root/.venv/lib/python3.11/site-packages/torch/nn.py:12: note\n"),
        new_output("display_data", data={"text/markdown": "saved to `/tmp/abc/model`"}),
    ],
    "empty table": [
        new_output("execute_result", data={"text/html": _html_table(0), "text/plain": "Empty DataFrame"}),
        new_output("execute_result", data={"text/plain": "Empty DataFrame\nColumns: [value]\nIndex: []"}),
        new_output("display_data", data={"text/html": "<table><tr><th>a</th><th>b</th></tr></table>"}),
    ],
    "noise": [
        _stream("\rLoading weights:   0%|          | 0/29 [00:00<?, ?it/s]"),
        _stream("\rWriting model shards: 100%|██████████| 1/1 [00:00<00:00, 822.74it/s]"),
        _stream("\rpretrain:  42%|████▏     | 503/1200 [03:57<05:22,  2.16it/s, loss=0.853]"),
        _stream("\rGRPO:   1%|▏         | 1/80 [00:00<00:26,  2.95step/s]"),
        _stream("\rseeds:  33%|███▎      | 1/3 [03:50<07:41, 230.94s/it]"),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"}}),
    ],
}

# Outputs that look close but are fine: relative paths, URLs, prose about warnings, percentages, real tables.
GOOD = [
    _stream("Results of this run: book/results/cost.json (run 20261130t142234-c3910a19).\n", name="stdout"),
    _stream("kept 1347 of 1600 teacher samples (84%): 420 distinct; 2.1e+11 FLOPs, 5 s\n", name="stdout"),
    _stream("step   10 | loss -0.0000 | reward 0.375 | len  26.3 |   3.7k tok/s |    6.7 s\n", name="stdout"),
    new_output("display_data", data={"text/markdown": "See <https://github.com/home/work/tmp> and `/content` docs."}),
    new_output("display_data", data={"text/markdown": "The detector gave no warning; errors are counted as wrong."}),
    new_output("execute_result", data={"text/html": _html_table(3), "text/plain": "   value\n0  0\n1  1\n2  2"}),
    new_output("display_data", data={"image/png": "aGVsbG8gL3dvcmsvIFdhcm5pbmc6IGl0L3Nd"}),
]


def _write(path, outputs, minor: int = 5):
    nb = new_notebook(cells=[new_markdown_cell("# A chapter"), new_code_cell("x = 1", outputs=list(outputs))])
    nb.nbformat_minor = minor
    for cell in nb.cells if minor < 5 else []:  # cell ids exist from nbformat 4.5 on
        cell.pop("id")
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_checker_finds_each_kind_of_problem(kind, tmp_path):
    for i, out in enumerate(BAD[kind]):
        assert [k for k, _ in output_problems(out)] == [kind], (kind, i, output_problems(out))
        problems = scan_notebook(_write(tmp_path / f"{i}.ipynb", [out]))
        assert [(p.notebook, p.cell, p.kind) for p in problems] == [(f"{i}.ipynb", 1, kind)]
        assert str(problems[0]).startswith(f"{i}.ipynb cell 1 [{kind}]: ")


def test_checker_passes_clean_outputs(tmp_path):
    assert [output_problems(o) for o in GOOD] == [[] for _ in GOOD]
    assert scan_folder(tmp_path) == []
    _write(tmp_path / "clean.ipynb", GOOD)
    assert scan_folder(tmp_path) == []


def test_checker_scans_a_folder_once_per_kind_and_cell(tmp_path):
    """A tqdm bar is hundreds of outputs: one problem per cell and kind, every notebook of the folder."""
    _write(tmp_path / "01_a.ipynb", BAD["noise"] * 50 + BAD["warning"][:1])
    _write(tmp_path / "02_b.ipynb", GOOD + BAD["empty table"][:1], minor=4)
    (tmp_path / "notes.txt").write_text("/work/ not a notebook")
    problems = scan_folder(tmp_path)
    assert [(p.notebook, p.kind) for p in problems] == [
        ("01_a.ipynb", "noise"),
        ("01_a.ipynb", "warning"),
        ("02_b.ipynb", "empty table"),
    ]
    with pytest.raises(FileNotFoundError):
        scan_folder(tmp_path / "missing")


def test_checker_command_line(tmp_path, capsys):
    from minir1.publish.outputs import main

    _write(tmp_path / "clean.ipynb", GOOD)
    assert main([str(tmp_path)]) == 0
    _write(tmp_path / "noisy.ipynb", BAD["path"][:1])
    assert main([str(tmp_path)]) == 1
    assert "noisy.ipynb cell 1 [path]: wrote /work/main/.artifacts" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the causes, fixed in the code
def test_no_progress_bars_in_a_published_run(monkeypatch):
    from minir1.utils import PROGRESS_ENV, progress_bars

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.delenv("MINIR1_PUBLISH", raising=False)
    assert progress_bars()  # a reader running a notebook sees progress
    monkeypatch.setenv("MINIR1_PUBLISH", "20261207t000000-abcdef12")
    assert not progress_bars()  # make chapters: nothing frozen into the book
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert progress_bars()
    monkeypatch.setenv(PROGRESS_ENV, "0")
    monkeypatch.delenv("MINIR1_PUBLISH")
    assert not progress_bars()


def test_training_and_checkpoints_print_no_bars(tmp_path, tok, capfd, monkeypatch):
    """No "Writing model shards"/"Loading weights" from saving and loading, no tqdm bar when bars are off."""
    from minir1 import models
    from minir1.train import TrainConfig, train

    monkeypatch.setenv("MINIR1_PROGRESS", "0")
    model = models.build("pico", tok, seed=0)
    train(model, tok, [("1+1", "2")] * 4, TrainConfig(steps=2, batch_size=2, warmup_steps=1, log_every=10))
    models.load(models.save(model, tok, tmp_path / "m"))
    out, err = capfd.readouterr()
    problems = output_problems({"output_type": "stream", "name": "stderr", "text": out + err})
    assert problems == [], problems
