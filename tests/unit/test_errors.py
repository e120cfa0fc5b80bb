import pytest

from workflow.errors import ScaleDAGError, json_option, main_guard


def test_json_option_parses_or_names_the_flag():
    assert json_option("--runs", '["a", {"b": 1}]') == ["a", {"b": 1}]
    with pytest.raises(ScaleDAGError, match=r"^--budgets: not JSON \("):
        json_option("--budgets", "[1e18,")


def test_json_option_names_a_missing_required_key():
    assert json_option("--spec", '{"arch": "llama", "points": []}', required=("arch", "points")) == {
        "arch": "llama",
        "points": [],
    }
    with pytest.raises(ScaleDAGError, match=r"^--spec: missing key 'points'$"):
        json_option("--spec", '{"arch": "llama"}', required=("arch", "points"))


def test_main_guard_turns_bad_input_into_one_line_and_exit_2(capsys):
    @main_guard
    def main():
        json_option("--runs", "{not json")

    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --runs: not JSON") and err.count("\n") == 1
