import jax
import pytest

from scalerl.compile_cache import configure_compile_cache, default_cache_dir


@pytest.fixture
def restore_jax_cache_config(monkeypatch):
    saved = {
        name: jax.config.values[name]
        for name in ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    }
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def test_off_by_flag_or_environment_leaves_jax_alone(monkeypatch, restore_jax_cache_config):
    before = jax.config.values["jax_compilation_cache_dir"]
    monkeypatch.setenv("SCALERL_COMPILE_CACHE", "on")
    assert configure_compile_cache(enabled=False) is None
    monkeypatch.setenv("SCALERL_COMPILE_CACHE", "off")
    assert configure_compile_cache() is None
    assert jax.config.values["jax_compilation_cache_dir"] == before


def test_default_directory_is_per_user(monkeypatch, tmp_path, restore_jax_cache_config):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("SCALERL_COMPILE_CACHE", "on")
    directory = configure_compile_cache()
    assert directory == default_cache_dir() == str(tmp_path / "scalerl" / "jax")
    assert jax.config.values["jax_compilation_cache_dir"] == directory
    assert jax.config.values["jax_persistent_cache_min_compile_time_secs"] == 0.2


def test_a_directory_in_the_variable_moves_it_and_jax_own_setting_wins(monkeypatch, tmp_path, restore_jax_cache_config):
    monkeypatch.setenv("SCALERL_COMPILE_CACHE", str(tmp_path / "mine"))
    assert configure_compile_cache() == str(tmp_path / "mine")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax-own"))
    assert configure_compile_cache() == str(tmp_path / "jax-own")
    assert jax.config.values["jax_compilation_cache_dir"] == str(tmp_path / "jax-own")


def test_a_cached_program_is_written_and_gives_the_same_result(monkeypatch, tmp_path, restore_jax_cache_config):
    monkeypatch.setenv("SCALERL_COMPILE_CACHE", str(tmp_path))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    configure_compile_cache()

    @jax.jit
    def program(x):
        return jax.numpy.sin(x) * 3.0 + 0.25

    x = jax.numpy.arange(7.0)
    first = program(x)
    assert any(path.name.startswith("jit_program") for path in tmp_path.iterdir())
    jax.clear_caches()
    assert (program(x) == first).all()
