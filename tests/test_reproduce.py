"""elrt reproduce never publishes a stale or broken chapter."""

from pathlib import Path

import pytest

from elrt_core import profiles
from elrt_core.study import reproduce


def test_a_failed_notebook_is_removed_and_old_chapters_do_not_survive(tmp_path, monkeypatch):
    out = tmp_path / "generated"
    out.mkdir()
    (out / reproduce.MARKER).write_text("")  # written by an earlier build
    (out / "07_old_chapter.ipynb").write_text("{}")  # a chapter of an earlier build

    def execute(name: str, parameters: dict, out_dir: Path) -> Path:
        target = out_dir / f"{name}.ipynb"
        target.write_text("{}")  # papermill writes the executed copy as it goes, also when a cell fails
        if name == "02_orthogonality_on_off":
            raise RuntimeError("a cell failed")
        return target

    monkeypatch.setattr(reproduce, "execute_notebook", execute)
    status = reproduce.run(profiles.load("smoke"), reuse_only=True, out=out, jobs=1)
    assert status == 1
    assert not (out / "02_orthogonality_on_off.ipynb").exists() and not (out / "07_old_chapter.ipynb").exists()
    assert (out / "01_approximation_error.ipynb").exists()


def test_a_folder_it_did_not_make_keeps_everything_but_its_chapters(tmp_path, monkeypatch):
    out = tmp_path / "my_work"
    out.mkdir()
    mine = [out / "07_my_analysis.ipynb", out / "notes.txt", out / "sub" / "data.csv"]
    mine[-1].parent.mkdir()
    for path in mine:
        path.write_text("keep")
    (out / "04_main_results.ipynb").write_text("{}")  # an earlier reproduce into this folder
    monkeypatch.setattr(reproduce, "execute_notebook", lambda name, parameters, out_dir: None)
    for _ in range(2):  # the second run treats the folder no differently
        assert reproduce.run(profiles.load("smoke"), reuse_only=True, out=out) == 0
        assert all(path.read_text() == "keep" for path in mine)
    assert not (out / reproduce.MARKER).exists()
    assert not (out / "04_main_results.ipynb").exists()


def test_a_folder_it_creates_is_its_own_and_loses_renamed_chapters(tmp_path, monkeypatch):
    out = tmp_path / "new"
    monkeypatch.setattr(reproduce, "execute_notebook", lambda name, parameters, out_dir: None)
    assert reproduce.run(profiles.load("smoke"), reuse_only=True, out=out) == 0
    assert (out / reproduce.MARKER).exists()
    (out / "09_renamed_chapter.ipynb").write_text("{}")  # a chapter an earlier build wrote under a name now gone
    assert reproduce.run(profiles.load("smoke"), reuse_only=True, out=out) == 0
    assert not (out / "09_renamed_chapter.ipynb").exists()


def test_the_source_notebooks_are_never_the_output(monkeypatch):
    monkeypatch.setattr(reproduce, "execute_notebook", lambda name, parameters, out_dir: pytest.fail("ran"))
    with pytest.raises(ValueError, match="cannot overwrite their sources"):
        reproduce.run(profiles.load("smoke"), reuse_only=True, out=reproduce.notebook_dir())


@pytest.mark.slow
def test_a_chapter_runs_in_a_kernel_that_does_not_warn_about_plain_tcp(tmp_path, monkeypatch, capfd):
    import nbformat

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("print(x + 1)")]
    nbformat.write(nb, notebooks / "07_tiny.ipynb")
    monkeypatch.setattr(reproduce, "notebook_dir", lambda: notebooks)
    out = reproduce.execute_notebook("07_tiny", {"x": 41}, tmp_path)
    assert nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"] == "42\n"
    err = capfd.readouterr().err
    assert "without encryption" not in err and "KeyboardInterrupt caught in kernel" not in err


@pytest.mark.slow
def test_a_chapter_kernel_is_shut_down_without_the_interrupt_jupyter_client_sends_first(monkeypatch):
    """jupyter_client's manager interrupts (SIGINT) a kernel it shuts down; papermill shuts a chapter's kernel
    down while ipykernel may still handle its last request, where SIGINT logs an error (elrt_core.study.kernels).
    A chapter's kernel gets no signal and still ends."""
    import asyncio
    import signal

    from jupyter_client import AsyncKernelManager

    from elrt_core.study.kernels import ChapterKernelManager

    sent = []
    real_signal = AsyncKernelManager._async_signal_kernel

    async def recording(self, signum):
        sent.append(signum)
        await real_signal(self, signum)

    monkeypatch.setattr(AsyncKernelManager, "_async_signal_kernel", recording)

    async def start_and_shut_down(manager_class) -> bool:
        km = manager_class(kernel_name="python3")
        await km.start_kernel()
        await km.shutdown_kernel()
        return await km.is_alive()

    assert asyncio.run(start_and_shut_down(AsyncKernelManager)) is False and sent == [signal.SIGINT]  # jupyter_client's way
    sent.clear()
    assert asyncio.run(start_and_shut_down(ChapterKernelManager)) is False and sent == []
