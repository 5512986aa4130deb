"""Every numeric flag of `sparserl train`, given a value no run can use, is refused before any work:
exit code 2, one line naming the flag, and no run directory. The flags are read from the config's
type hints, so a new numeric setting is covered with no edit here."""

from __future__ import annotations

import math
import re
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparserl.cli import main
from sparserl.config import Config, NetworkSparsity


def numeric_fields(cls) -> dict[str, type]:
    """Fields typed int or float (or those or None) of a config dataclass."""
    out = {}
    for name, tp in typing.get_type_hints(cls).items():
        kinds = [a for a in (typing.get_args(tp) or (tp,)) if a is not type(None)]
        if len(kinds) == 1 and kinds[0] in (int, float):
            out[name] = kinds[0]
    return out


FIELDS = {**numeric_fields(Config), **numeric_fields(NetworkSparsity)}
# numbers no setting accepts: non-finite floats; negative or beyond 64 bits for integers
BAD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf])
BAD_INTS = st.sampled_from([-1, -(2**40), 2**64, 2**70])


@st.composite
def bad_flag(draw):
    name = draw(st.sampled_from(sorted(FIELDS)))
    kind = FIELDS[name]
    value = draw(BAD_FLOATS if kind is float else BAD_INTS)
    if kind is int and value > 0 and name not in ("seed", "eval_seed"):
        value = -1  # a huge count is a long run, not a mistake; a huge seed is out of range
    return name, value


def test_the_numeric_flags_are_many():
    assert {"seed", "eval_seed", "total_steps", "gamma", "tau", "actor_lr", "srste_decay", "gmp_start",
            "buffer_threshold", "stop_at_return"} <= set(FIELDS)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bad_flag())
def test_a_bad_number_is_refused_naming_its_flag(tmp_path, capsys, case):
    name, value = case
    run_dir = tmp_path / f"run-{name}"
    flag = "--" + name.replace("_", "-")
    method = ["--sparsity", "rigl"] if name in numeric_fields(NetworkSparsity) else []
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        code = main(["train", "--env", "Pendulum-v1", *method, flag, text, "--run-dir", str(run_dir)])
    except SystemExit as exc:  # tyro refusing the text itself (a count given as nan, say)
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, f"{flag} {text}: exit {code}\n{captured.out}{err}"
    assert not run_dir.exists(), f"{flag} {text} left {run_dir}"
    assert re.search(rf"(?<![\w-]){name}(?!\w)|{flag}", err), f"{flag} {text}: {err}"
    assert len(err.splitlines()) == 1, f"{flag} {text}: not one line:\n{err}"
    if "Traceback" in err:
        pytest.fail(f"{flag} {text} gave a traceback:\n{err}")
