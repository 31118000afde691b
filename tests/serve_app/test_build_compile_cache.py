"""The compile-artifact build's command line: what it refuses before compiling anything. (The build
itself, compiling as a replica does and saving keyed artifacts, is tested with the artifacts' loading
in tests/serve_app/model/test_compile_cache.py.)"""

import pytest

from serve_app.build_compile_cache import main


def test_nothing_to_compile_is_refused_before_the_model_is_loaded(capsys, cache_dir):
    # On a CPU compile=auto is off: the build must be told the endpoint's compile mode.
    assert main(["model=tiny", "device=cpu", f"cache_dir={cache_dir}"]) == 2
    assert "nothing to compile" in capsys.readouterr().err


def test_bad_settings_and_arguments_are_refused_with_the_setting_named(capsys, cache_dir):
    assert main(["compile=sometimes"]) == 2
    assert "compile" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["compile"])
    assert exit_info.value.code == 2 and "expected setting=value" in capsys.readouterr().err


def test_with_compile_artifacts_off_the_folder_must_be_named(capsys, tiny_model_dir, cache_dir):
    args = ["model=tiny", "device=cpu", f"cache_dir={cache_dir}", "compile=default", "compile_artifacts=off"]
    assert main(args) == 2
    assert "--out" in capsys.readouterr().err
