import functools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import jobcorr
from jobcorr.names import NAME_RULE, check_name, function_job_name, job_name


@pytest.mark.parametrize("name", ["a", "clickhouse_sync", "job2", "x" * 63])
def test_accepts_identifiers(name: str) -> None:
    assert check_name("job", name) == name


@pytest.mark.parametrize(
    "name", ["", "Sync", "2fast", "_private", "has-dash", "has space", "x" * 64, "ünï", "a\n"]
)
def test_refuses_anything_else_and_quotes_the_rule(name: str) -> None:
    with pytest.raises(ValueError, match=r"must match \^\[a-z\]") as error:
        check_name("job", name)
    assert NAME_RULE in str(error.value)


def test_track_job_and_volume_names_are_validated(registry) -> None:
    with pytest.raises(ValueError, match="job name 'Bad Job'"):
        jobcorr.track("Bad Job", registry=registry)
    with pytest.raises(ValueError, match="job name"):
        jobcorr.job("bad/job")
    with pytest.raises(ValueError, match="volume name 'player metrics'"):  # noqa: SIM117
        with jobcorr.track("good_job", registry=registry) as run:
            run.add("player metrics", 1)


@given(st.text(max_size=80))
def test_only_names_matching_the_rule_pass(text: str) -> None:
    valid = re.fullmatch(r"[a-z][a-z0-9_]{0,62}", text) is not None
    try:
        check_name("job", text)
    except ValueError:
        assert not valid
    else:
        assert valid


@given(st.text(max_size=200))
def test_the_naming_rule_makes_every_text_a_valid_stable_name(text: str) -> None:
    if not text:
        with pytest.raises(ValueError, match="empty"):
            job_name(text)
        return
    name = job_name(text)
    assert check_name("job", name) == name
    assert job_name(name) == name  # a valid name is its own name
    if len(text) <= 63 and re.fullmatch(r"[a-z][a-z0-9_]*", text.lower()):
        assert name == text.lower()


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("reports.build_pdf", "reports_build_pdf"),
        ("Reports.Build-PDF", "reports_build_pdf"),
        ("2fast", "job_2fast"),
        ("é", "job__"),
        ("pkg." + "x" * 70 + ".send_mail", ("x" * 70 + "_send_mail")[-63:]),
    ],
)
def test_the_naming_rule_by_example(text: str, name: str) -> None:
    assert job_name(text) == name


def module_level_job() -> None: ...


def test_functions_are_named_module_function() -> None:
    def nested() -> None: ...

    assert function_job_name(module_level_job) == "test_names_module_level_job"
    assert function_job_name(functools.partial(module_level_job)) == ("test_names_module_level_job")
    assert function_job_name(nested) == (
        "test_names_test_functions_are_named_module_function_nested"
    )
