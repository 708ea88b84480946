import tomllib

import pytest

from smci_gpu.config import Config, env_overrides, load_config, to_toml
from smci_gpu.errors import ConfigError


def test_defaults_follow_the_paper():
    cfg = load_config(environ={})
    assert cfg.forest.max_features == 1 and isinstance(cfg.forest.max_features, int)
    assert cfg.forest.min_samples_leaf == 20
    assert cfg.forest.n_estimators == 100
    assert cfg.forest.max_depth == 64
    assert cfg.layers == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert len(cfg.features) == 25
    assert cfg.matching.reference[30] == "swvl2" and cfg.matching.reference[40] == "swvl3"


def test_precedence_file_env_cli(tmp_path):
    f = tmp_path / "smci.toml"
    f.write_text("[forest]\nn_estimators = 300\nmin_samples_leaf = 5\n[produce]\ntile_size = 64\n")
    env = {"SMCI_FOREST__N_ESTIMATORS": "500", "SMCI_NO_GPU": "1"}
    cfg = load_config(workdir=tmp_path, environ=env, overrides={"produce": {"tile_size": 32}})
    assert cfg.forest.n_estimators == 500  # env beats file
    assert cfg.forest.min_samples_leaf == 5  # file beats default
    assert cfg.produce.tile_size == 32  # CLI beats file
    assert cfg.workdir == tmp_path


def test_env_values_are_parsed_as_json():
    assert env_overrides({"SMCI_LAYERS": "[10, 20]", "SMCI_DEVICE": "cpu"}) == {
        "layers": [10, 20],
        "device": "cpu",
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[forest]\nn_estimatorz = 3\n", "unknown key 'forest.n_estimatorz'"),
        ("[forest]\nmin_samples_leaf = 'many'\n", "'forest.min_samples_leaf'"),
        ("[forest]\nmax_features = 0\n", "max_features"),
        ("layers = [15]\n", "layers"),
        ("features = ['swvl1', 'nonsense']\n", "unknown features ['nonsense']"),
        ("[region]\nwest = 120\neast = 100\n", "west < east"),
        ("device = 'tpu'\n", "'device'"),
        ("[forest\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(f, environ={})
    assert needle in str(exc.value)
    assert str(f) in str(exc.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_bad_env_names_the_source():
    with pytest.raises(ConfigError, match="environment"):
        load_config(environ={"SMCI_FOREST__MAX_DEPTH": "deep"})


def test_toml_round_trip_and_hash():
    cfg = load_config(environ={}, overrides={"forest": {"n_estimators": 7}})
    again = Config.model_validate(tomllib.loads(to_toml(cfg)))
    assert again == cfg
    assert again.hash() == cfg.hash()
    other = load_config(environ={}, overrides={"forest": {"n_estimators": 8}})
    assert other.hash() != cfg.hash()
    # Paths and device do not change the product, so they do not change the hash.
    moved = load_config(
        environ={}, workdir="/elsewhere", overrides={"forest": {"n_estimators": 7}, "device": "cpu"}
    )
    assert moved.hash() == cfg.hash()
