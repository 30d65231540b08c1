"""Every fuzz harness survives its seeds and every input that ever failed it (fuzz/run.py finds new ones)."""

import pytest

from fuzz.harnesses import CORPUS, SIGMA, harnesses, regression_inputs, run_one

CASES = [(name, f"seed-{number}", data) for name, harness in harnesses().items()
         for number, data in enumerate(harness.seeds()[:40])]
CASES += [(name, label, data) for name in harnesses() for label, data in regression_inputs(name)]


@pytest.mark.parametrize(("name", "label", "data"), CASES, ids=[f"{n}-{label}" for n, label, _ in CASES])
def test_a_harness_input_raises_only_documented_errors(name, label, data):
    run_one(harnesses()[name], data)


@pytest.mark.parametrize("name", sorted(harnesses()))
def test_a_harness_rejects_an_undocumented_error(name):
    """The replay can fail: a target that raises something else is a crash, not a pass."""
    harness = harnesses()[name]

    def broken(data):
        raise ZeroDivisionError("planted")

    with pytest.raises(ZeroDivisionError):
        run_one(type(harness)(harness.name, broken, harness.expected, harness.seeds), b"x")


@pytest.mark.parametrize(("name", "folder", "least"), [("digests", CORPUS / "messages", 2 + 4), ("sigma", SIGMA / "rules", 57),
                                                       ("records", CORPUS / "events", 19)])
def test_a_harness_is_seeded_from_the_shared_data_read_in_place(name, folder, least):
    """Seeds come from ../shared at run time (never copied here): the documented digests, every SigmaHQ rule."""
    if not folder.exists():
        pytest.skip(f"{folder} is absent: the harness runs on its test fixtures alone")
    assert len(harnesses()[name].seeds()) >= least
