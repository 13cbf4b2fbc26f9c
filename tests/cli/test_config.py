"""Config loading, overrides and one-line errors."""
from pathlib import Path

import pytest

from ssl_bench.config import apply_overrides, check_kwargs, load_config, resolve_class
from ssl_bench.errors import ConfigError
from ssl_bench.methods import METHODS, BaseMethod, SimCLR


def test_overrides_parse_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: simclr}\ndata: {dataset: digits, batch_size: 32}\n")
    cfg = apply_overrides(load_config(path), ["--data.batch_size", "64", "--trainer.max_epochs=3",
                                              "--data.augment.crop_scale", "[0.2, 1.0]", "--model", "byol"])
    assert cfg["data"]["batch_size"] == 64 and cfg["trainer"]["max_epochs"] == 3
    assert cfg["data"]["augment"]["crop_scale"] == [0.2, 1.0]
    assert cfg["model"]["name"] == "byol"
    assert cfg["run"]["seed"] == 0  # defaults filled in


@pytest.mark.parametrize("args, match", [
    (["--foo.bar", "1"], "unknown override --foo.bar"),
    (["--data.batch_size"], "needs a value"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_bad_overrides(args, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(load_config(None), args)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("models: {}\n")
    with pytest.raises(ConfigError, match=r"unknown config section\(s\) \['models'\]"):
        load_config(tmp_path / "bad.yaml")


def test_resolve_class():
    assert resolve_class("simclr", METHODS, BaseMethod, "method") is SimCLR
    assert resolve_class("ssl_bench.methods.SimCLR", METHODS, BaseMethod, "method") is SimCLR
    with pytest.raises(ConfigError, match="unknown method 'simclrr'; known: barlow_twins, byol"):
        resolve_class("simclrr", METHODS, BaseMethod, "method")
    with pytest.raises(ConfigError, match="not a subclass of BaseMethod"):
        resolve_class("torch.nn.Linear", METHODS, BaseMethod, "method")
    with pytest.raises(ConfigError, match="cannot import method 'nope.Module'"):
        resolve_class("nope.Module", METHODS, BaseMethod, "method")


def test_check_kwargs_sees_base_parameters_and_types():
    check_kwargs(SimCLR, {"temperature": 0.1, "lr": 1, "backbone_kwargs": {"width": 8},
                          "monitor_kappa": None}, "model")
    with pytest.raises(ConfigError, match="unknown key model.temprature for SimCLR; allowed: .*temperature"):
        check_kwargs(SimCLR, {"temprature": 0.1}, "model")
    with pytest.raises(ConfigError, match=r"model.lr must be float, got 'fast' \(str\)"):
        check_kwargs(SimCLR, {"lr": "fast"}, "model")
    with pytest.raises(ConfigError, match="model.linear_probe must be bool"):
        check_kwargs(SimCLR, {"linear_probe": 1}, "model")


RUN_CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[2] / "configs").glob("*/*.yaml")
                     if p.parent.name not in ("sweeps", "scan"))  # sweep specs and SCAN jobs have their own tests


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_method_config_is_complete_and_checks_out(path):
    """Every config under configs/<family>/ loads and passes the checks pretrain runs before reading
    data (keys, types, method name, trainer limits); the learning tests' configs/cifar10-tiny/ too."""
    from ssl_bench.build import full_config

    full_config(load_config(path))
