"""Execute the jupytext notebooks (``make notebooks``): each .py becomes an executed .ipynb, with its wall time.

    .venv/bin/python scripts/run_notebooks.py [NOTEBOOK.py ...] [--out build/notebooks] [--timeout 900]

Each notebook is read with jupytext (py:percent), executed by nbclient in a fresh
kernel whose working directory is notebooks/ (so ``import nbsetup`` works), and
written executed to ``--out`` (the repository's ``build/``, ignored by git).
``WORLDCOVER_NB_SIZE`` (tiny | normal) chooses the notebooks' size. The exit
status is 1 when any notebook failed; the failed cell's error is one line.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def notebooks() -> list[Path]:
    """The numbered notebooks, in order (``notebooks/NN_*.py``)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


@dataclass
class Executed:
    """One notebook's execution: where it was written, how long it took, the error if it failed."""

    source: Path
    out: Path
    seconds: float
    error: str = ""
    cpu_seconds: float = 0.0  # the kernel's user + system CPU time (the wall time also counts other load)


def _first_line(exc: BaseException) -> str:
    """The last non-empty line of a cell error (the exception itself), not the whole traceback."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the kernel colours its tracebacks
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (a kernel counts once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def execute(source: Path, out_dir: Path, timeout: int = 900, env: dict[str, str] | None = None) -> Executed:
    """Execute one jupytext notebook in a fresh kernel and write it as .ipynb under ``out_dir`` (atomically)."""
    import jupytext
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = jupytext.read(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{source.stem}.ipynb"
    t0, cpu0 = time.perf_counter(), _children_cpu()
    error = ""
    with tempfile.TemporaryDirectory(prefix="worldcover-kernel-") as sockets:
        # the kernel talks over Unix sockets in a private folder, not over loopback TCP ports
        km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(source.parent)}})
        try:
            client.execute(env={**os.environ, **(env or {})})
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            error = _first_line(exc)
        finally:
            if km.has_kernel:  # nbclient leaves a kernel manager it was given running: ours to stop
                km.shutdown_kernel(now=False)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    tmp = out.with_name(f".{out.name}.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(out)
    return Executed(source, out, seconds, error, cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/NN_*.py)")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "notebooks", help="folder for the executed .ipynb")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one cell may take")
    args = ap.parse_args(argv)
    chosen = args.notebooks or notebooks()
    missing = [str(p) for p in chosen if not p.is_file()]
    if missing:
        print(f"error: notebook(s) not found: {', '.join(missing)} (expected notebooks/NN_*.py)", file=sys.stderr)
        return 2
    size = os.environ.get("WORLDCOVER_NB_SIZE", "normal")
    print(f"executing {len(chosen)} notebooks, size {size}, into {args.out}", flush=True)
    failed = 0
    total = time.perf_counter()
    for path in chosen:
        run = execute(path, args.out, args.timeout)
        status = "ok" if not run.error else f"FAILED: {run.error}"
        where = run.out.relative_to(REPO) if run.out.is_relative_to(REPO) else run.out
        print(f"{path.name:40s} {run.seconds:7.1f} s (CPU {run.cpu_seconds:6.1f} s)  {status}  -> {where}", flush=True)
        failed += bool(run.error)
    print(f"{len(chosen) - failed} passed, {failed} failed in {time.perf_counter() - total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
