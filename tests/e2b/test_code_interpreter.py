"""The unmodified `e2b-code-interpreter` SDK (sync and async) against the code interpreter on
port 49999 of a `code-interpreter-v1` sandbox: persistent contexts (Python kernels and a
JavaScript one), errors as Jupyter gives them, streaming callbacks, rich results, and an
execution the client gives up on being interrupted in the sandbox.
"""
import base64
import os

import httpx
import pytest

from conftest import KEY_A, KEY_B, URL



@pytest.fixture
def sbx():
    """A fresh sandbox of the interpreter SDK's default template (`code-interpreter-v1`) from its
    own `Sandbox.create()`, unmodified; killed after the test."""
    from e2b_code_interpreter import Sandbox

    sandbox = Sandbox.create(timeout=300)
    try:
        yield sandbox
    finally:
        Sandbox.kill(sandbox.sandbox_id)


@pytest.fixture
def sandbox_id(sbx):
    return sbx.sandbox_id


def test_variables_and_imports_survive_between_executions(sbx):
    sbx.run_code("import math\nx = 1")
    assert sbx.run_code("x + 1").text == "2"
    assert sbx.run_code("math.sqrt(16)").text == "4.0"


def test_the_working_directory_survives_and_starts_at_the_users_home(sbx):
    assert sbx.run_code("import os; os.getcwd()").text == "/home/user"
    sbx.run_code("os.chdir('/tmp')")
    assert sbx.run_code("os.getcwd()").text == "/tmp"


def test_execution_count_goes_up(sbx):
    first = sbx.run_code("1").execution_count
    assert sbx.run_code("2").execution_count == first + 1


def test_contexts_are_separate_and_can_be_listed_removed_and_restarted(sbx):
    from e2b import NotFoundException

    a = sbx.create_code_context()
    b = sbx.create_code_context(cwd="/tmp")
    assert (a.language, a.cwd) == ("python", "/home/user")
    assert (b.language, b.cwd) == ("python", "/tmp")
    sbx.run_code("secret = 7", context=a)
    assert sbx.run_code("secret", context=a).text == "7"
    assert sbx.run_code("secret", context=b).error.name == "NameError"
    assert sbx.run_code("import os; os.getcwd()", context=b).text == "/tmp"
    assert {a.id, b.id} <= {c.id for c in sbx.list_code_contexts()}

    sbx.restart_code_context(a)
    assert sbx.run_code("secret", context=a).error.name == "NameError"

    sbx.remove_code_context(b.id)
    assert b.id not in {c.id for c in sbx.list_code_contexts()}
    with pytest.raises(NotFoundException):
        sbx.run_code("1", context=b)


def test_the_default_contexts_are_listed_and_a_new_one_comes_last(sbx):
    first = sbx.list_code_contexts()
    assert {"python", "javascript"} <= {c.language for c in first}
    assert all(c.cwd == "/home/user" for c in first)
    made = sbx.create_code_context(language="python", cwd="/tmp")
    last = sbx.list_code_contexts()[-1]
    assert (last.id, last.language, last.cwd) == (made.id, "python", "/tmp")


def test_a_dataframe_comes_with_its_columns_as_data(sbx):
    result = sbx.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})").results[0]
    assert result.is_main_result and result.data == {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    assert "<table" in result.html


def test_an_error_has_jupyters_name_value_and_traceback(sbx):
    seen = []
    execution = sbx.run_code("def f():\n    return 1 / 0\nf()", on_error=seen.append)
    assert execution.error.name == "ZeroDivisionError"
    assert execution.error.value == "division by zero"
    assert "ZeroDivisionError" in execution.error.traceback and "f()" in execution.error.traceback
    assert seen and seen[0].name == "ZeroDivisionError"
    assert execution.results == []


def test_stdout_stderr_and_results_stream_to_the_callbacks(sbx):
    out, err, results = [], [], []
    execution = sbx.run_code("import sys\nprint('one')\nprint('two', file=sys.stderr)\n'done'",
                             on_stdout=out.append, on_stderr=err.append, on_result=results.append)
    assert "".join(m.line for m in out) == "one\n"
    assert "".join(m.line for m in err) == "two\n"
    assert [r.text for r in results] == ["done"] and results[0].is_main_result
    assert execution.logs.stdout == ["one\n"] and execution.text == "done"


def test_shell_lines_and_env_vars_of_one_execution(sbx):
    execution = sbx.run_code("!echo from-the-shell $GREETING", envs={"GREETING": "hello"})
    assert "from-the-shell hello" in "".join(execution.logs.stdout)
    assert sbx.run_code("import os; os.environ.get('GREETING')", envs={"GREETING": "hi"}).text == "hi"
    assert sbx.run_code("os.environ.get('GREETING') is None").text == "True"


def test_display_gives_rich_results_and_a_matplotlib_figure_a_png(sbx):
    execution = sbx.run_code("from IPython.display import display, HTML\ndisplay(HTML('<b>bold</b>'))")
    assert execution.results[0].html == "<b>bold</b>" and not execution.results[0].is_main_result

    execution = sbx.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()")
    pngs = [r.png for r in execution.results if r.png]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_a_client_timeout_interrupts_the_execution_and_the_context_goes_on(sbx):
    from e2b import TimeoutException

    sbx.run_code("count = 1")
    with pytest.raises(TimeoutException):
        sbx.run_code("while True:\n    pass", timeout=2)
    # The kernel was interrupted (not killed): its state is still there and it takes new work.
    assert sbx.run_code("count + 1", timeout=30).text == "2"


def test_a_client_timeout_interrupts_a_javascript_loop_too(sbx):
    from e2b import TimeoutException

    js = sbx.create_code_context(language="javascript")
    sbx.run_code("let kept = 41", context=js)
    with pytest.raises(TimeoutException):
        sbx.run_code("while (true) {}", context=js, timeout=2)
    assert sbx.run_code("kept + 1", context=js, timeout=30).text == "42"


def test_a_kernel_that_exits_is_reported_and_the_next_execution_gets_a_fresh_one(sbx):
    ctx = sbx.create_code_context()
    sbx.run_code("lost = 1", context=ctx)
    died = sbx.run_code("import os\nos._exit(3)", context=ctx, timeout=60)
    assert died.error is not None and died.error.name == "KernelDied"
    after = sbx.run_code("'lost' in globals()", context=ctx, timeout=60)
    assert after.text == "False"
    assert ctx.id in {c.id for c in sbx.list_code_contexts()}


def test_a_javascript_context_keeps_its_declarations(sbx):
    js = sbx.create_code_context(language="javascript")
    assert js.language == "javascript"
    sbx.run_code("const answer = 21; let calls = 0", context=js)
    execution = sbx.run_code("calls += 1; console.log('calls', calls); answer * 2", context=js)
    assert execution.text == "42" and "".join(execution.logs.stdout) == "calls 1\n"
    assert sbx.run_code("throw new TypeError('nope')", context=js).error.name == "TypeError"
    # Static imports and top-level await, as in E2B's JavaScript kernel.
    execution = sbx.run_code("import { readFileSync } from 'fs'\nconsole.log(typeof readFileSync)", context=js)
    assert execution.logs.stdout == ["function\n"]
    sbx.run_code("const later = await Promise.resolve('awaited')", context=js)
    assert sbx.run_code("later", context=js).text == "awaited"
    # language= picks that language's default context.
    assert sbx.run_code("[1, 2, 3].map(x => x * 2).join(',')", language="javascript").text == "2,4,6"


def test_unknown_contexts_and_other_tenants_are_refused(sandbox_id, sbx):
    from e2b import NotFoundException

    with pytest.raises(NotFoundException):
        sbx.remove_code_context("no-such-context")
    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49999", "X-API-KEY": KEY_B}
    r = httpx.post(f"{URL}/execute", json={"code": "1"}, headers=headers, timeout=30)
    assert r.status_code == 502 and "was not found" in r.text
    # The context calls carry only E2B-Traffic-Access-Token (create's trafficAccessToken): a wrong
    # one, or none, is refused.
    for token in ({"E2B-Traffic-Access-Token": "0" * 64}, {}):
        r = httpx.get(f"{URL}/contexts", headers={"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49999", **token}, timeout=30)
        assert r.status_code == 401, r.text
    r = httpx.get(f"{URL}/contexts", headers={"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49999",
                                               "E2B-Traffic-Access-Token": sbx.traffic_access_token}, timeout=30)
    assert r.status_code == 200, r.text
    both = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49999", "X-API-KEY": KEY_A}
    r = httpx.post(f"{URL}/execute", json={"code": "1", "language": "python", "context_id": "x"}, headers=both, timeout=30)
    assert r.status_code == 400


def test_a_sandbox_of_another_template_has_no_interpreter():
    from e2b_code_interpreter import Sandbox

    sbx = Sandbox.create(template="base", timeout=300)
    try:
        with pytest.raises(Exception) as failure:
            sbx.run_code("1")
        assert "code-interpreter-v1" in str(failure.value)
    finally:
        Sandbox.kill(sbx.sandbox_id)


@pytest.mark.asyncio
async def test_the_async_client():
    from e2b import TimeoutException
    from e2b_code_interpreter import AsyncSandbox

    sbx = await AsyncSandbox.create(timeout=300)
    try:
        out = []
        await sbx.run_code("y = 20")
        execution = await sbx.run_code("print('async')\ny * 2 + 2", on_stdout=out.append)
        assert execution.text == "42" and [m.line for m in out] == ["async\n"]
        assert (await sbx.run_code("[][0]")).error.name == "IndexError"
        ctx = await sbx.create_code_context(language="javascript")
        assert (await sbx.run_code("6 * 7", context=ctx)).text == "42"
        assert ctx.id in {c.id for c in await sbx.list_code_contexts()}
        with pytest.raises(TimeoutException):
            await sbx.run_code("import time\nwhile True: time.sleep(0.1)", timeout=2)
        assert (await sbx.run_code("y", timeout=30)).text == "20"
    finally:
        await AsyncSandbox.kill(sbx.sandbox_id)
