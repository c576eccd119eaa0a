"""hera's runner entrypoints run as plain processes, exactly as the rendered YAML invokes them.

For one task of each step in a rendered campaign we build the file Argo
writes for ``source: '{{inputs.parameters}}'`` (every input parameter of the
template with its value), run the script's ``command + args + [file]`` in a
subprocess, and check that it reaches ``worldcover.campaign.steps.<step>``
with the arguments :func:`render_step_calls` reports. The step functions are
replaced in the subprocess by recorders with the same signature (a
``sitecustomize`` written to a temporary folder), so nothing real runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldcover.campaign.plan import CampaignPlan
from worldcover.engines.argo.render import _resolve, _template_index, render, runner_kwargs

REPO = Path(__file__).resolve().parents[1]

SITECUSTOMIZE = '''
import functools, inspect, json, os
import worldcover.campaign.steps as steps

def _recorder(name):
    real = getattr(steps, name)
    sig = inspect.signature(real)
    @functools.wraps(real)  # same name, signature and annotations as the real step
    def record(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)  # refuses anything the real step would refuse
        kind = os.environ.get("WC_RAISE")
        if kind == "data":
            from worldcover.errors import DataError
            raise DataError("no Sentinel-2 scene covers tile N00E006 in 2021")
        if kind == "other":
            raise RuntimeError("connection reset")
        with open(os.environ["WC_RECORD"], "a") as f:
            f.write(json.dumps({"function": steps.__name__ + "." + name, "kwargs": bound.arguments}) + "\\n")
        if name == "collect_failures":
            return {"campaign": "c", "tiles": 3, "finished": 1, "failed": ["N00E006", "S03W063"],
                    "errors": {"N00E006": "x" * 5000}}
        return {"step": name, "pixels": 1234, "status": "done"}
    return record

for _name in ("write_plan", "process_tile", "collect_failures", "merge", "validate"):
    setattr(steps, _name, _recorder(_name))
'''


@pytest.fixture(scope="module")
def rendered():
    plan = CampaignPlan.create("wc-runner", 2021, tiles=["N00E006", "S03W063"], out_root="s3://worldcover/c",
                               max_cloud=20.0)
    return render(plan)


def _argo_inputs_file(template: dict, task: dict) -> list[dict]:
    """What Argo substitutes for {{inputs.parameters}}: every input with its resolved value."""
    given = {p["name"]: p["value"] for p in task.get("arguments", {}).get("parameters", [])}
    return [{"name": p["name"], "value": given.get(p["name"], p.get("default"))}
            for p in template["inputs"]["parameters"]]


@pytest.mark.slow  # hera runner subprocesses: ~8 s
def test_runner_processes_call_the_step_functions(rendered, tmp_path):
    objects = rendered.objects
    index = _template_index(objects)
    wf = next(o for o in objects if o.role == "workflow").obj
    local = {t["name"]: t for t in wf["spec"]["templates"]}
    tasks = local["main"]["dag"]["tasks"]
    chosen = [t for t in tasks if t["name"] in ("write-plan", "n00e006", "collect-failures", "merge", "validate")]
    assert [t["name"] for t in chosen] == ["write-plan", "n00e006", "collect-failures", "merge", "validate"]
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    procs = []
    for i, task in enumerate(chosen):
        template = _resolve(task, local, index)
        script = template["script"]
        args_file = tmp_path / f"inputs-{i}.json"
        args_file.write_text(json.dumps(_argo_inputs_file(template, task)))
        record, outputs = tmp_path / f"record-{i}.jsonl", tmp_path / f"outputs-{i}"
        env = {**os.environ, "WC_RECORD": str(record), "WORLDCOVER_OUTPUTS_DIR": str(outputs),
               "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
        cmd = [sys.executable if c == "python" else c for c in script["command"]] + script["args"] + [str(args_file)]
        procs.append((task, template, record, outputs,
                      subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)))
    for task, template, record, outputs, proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        result = json.loads(stdout.strip().splitlines()[-1])  # outputs.result
        if template["name"] == "collect-failures":
            # only counts reach the workflow's status; the count feeds the gate; the list is in the output root
            assert result == {"campaign": "c", "tiles": 3, "finished": 1, "failed": 2, "list": "failed_tiles.json"}
            assert (outputs / "failed").read_text() == "2"
        else:
            assert result["pixels"] == 1234
        calls = [json.loads(line) for line in record.read_text().splitlines()]
        assert len(calls) == 1
        function, kwargs = runner_kwargs(template, task)
        assert calls[0]["function"] == function
        assert calls[0]["kwargs"] == json.loads(json.dumps(kwargs))
        if template["name"] == "process-tile":
            assert calls[0]["kwargs"]["tile"] == "N00E006"
            assert calls[0]["kwargs"]["year"] == 2021 and calls[0]["kwargs"]["max_cloud"] == 20.0
            assert (outputs / "pixels").read_text() == "1234"  # -> outputs.parameters.pixels -> metric


def test_entrypoints_carry_the_steps_signatures():
    import inspect
    import typing

    from worldcover.campaign import steps
    from worldcover.engines.argo import entry

    for name, fn in entry.ENTRYPOINTS.items():
        real = getattr(steps, name)
        assert [p.name for p in inspect.signature(fn).parameters.values()] == \
            [p.name for p in inspect.signature(real).parameters.values()]
        assert [p.default for p in inspect.signature(fn).parameters.values()] == \
            [p.default for p in inspect.signature(real).parameters.values()]
        hints = typing.get_type_hints(real)
        for p in inspect.signature(fn).parameters.values():
            assert not isinstance(p.annotation, str) and p.annotation == hints[p.name]
        assert entry.step_of(f"worldcover.engines.argo.entry:{name}") == f"worldcover.campaign.steps.{name}"


@pytest.mark.parametrize("kind, code", [("data", 2), ("other", 1)])
def test_a_data_error_exits_2_in_one_line_and_anything_else_1(rendered, tmp_path, kind, code):
    """Exit 2 is what the retryStrategy expression does not retry (parts.RETRY_EXPRESSION)."""
    from worldcover.engines.argo import parts

    index = _template_index(rendered.objects)
    wf = rendered.submitted_workflow().obj
    local = {t["name"]: t for t in wf["spec"]["templates"]}
    task = next(t for t in local["main"]["dag"]["tasks"] if t["name"] == "n00e006")
    template = _resolve(task, local, index)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    args_file = tmp_path / "inputs.json"
    args_file.write_text(json.dumps(_argo_inputs_file(template, task)))
    env = {**os.environ, "WC_RECORD": str(tmp_path / "record"), "WORLDCOVER_OUTPUTS_DIR": str(tmp_path / "out"),
           "WC_RAISE": kind, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    script = template["script"]
    cmd = [sys.executable if c == "python" else c for c in script["command"]] + script["args"] + [str(args_file)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert parts.DATA_ERROR_EXIT == 2 and f'lastRetry.exitCode != "{parts.DATA_ERROR_EXIT}"' in parts.RETRY_EXPRESSION
    if kind == "data":
        assert proc.stderr.strip().splitlines() == [
            "error: DataError: no Sentinel-2 scene covers tile N00E006 in 2021"]
    else:
        assert "Traceback" in proc.stderr and "connection reset" in proc.stderr
