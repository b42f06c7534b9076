"""The ``train``, ``purifier`` and ``finetune`` sections (the pure checks; registry checks: tests/test_preflight.py)."""

import pytest

from udcshield.config import ConfigError, ModelSpec, params_from_dict


@pytest.mark.parametrize("raw, culprit", [
    ({"train": {"iterations": 1.5}}, "train.iterations"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"lr": float("nan")}}, "train.lr"),
    ({"train": {"flips": "yes"}}, "train.flips"),
    ({"train": {"lr": 1e-4, "lr_min": 1e-3}}, "train.lr_min"),
    ({"train": {"perceptual_weight": 0.1}}, "train.vgg_weights_path"),
    ({"train": {"models": []}}, "train.models must list at least one restorer"),
    ({"train": {"models": [{"name": "resunet"}, {"name": "resunet"}]}}, "train.models lists a restorer twice"),
    ({"train": {"models": [{"kwargs": {}}]}}, "train.models[0].name is required"),
    ({"train": {"models": [{"name": ""}]}}, "train.models[0].name"),
    ({"purifier": {"block_out_channels": []}}, "purifier.block_out_channels"),
    ({"purifier": {"num_train_timesteps": 0}}, "purifier.num_train_timesteps"),
    ({"purifier": {"lr": 1e-4, "lr_min": 1e-3}}, "purifier.lr_min (0.001) exceeds purifier.lr (0.0001)"),
    ({"purifier": {"block_out_channels": [8, 16, 32], "crop_size": 30}},
     "purifier.crop_size (30) must be a multiple of 4 = 2^(len(purifier.block_out_channels) - 1)"),
    ({"train": {"color_jitter": 1.0}}, "train.color_jitter (1.0) must be in [0, 1)"),
    ({"finetune": {"color_jitter": 2.0}}, "finetune.color_jitter (2.0) must be in [0, 1)"),
    ({"finetune": {"lr": 1e-4, "lr_min": 1e-3}}, "finetune.lr_min (0.001) exceeds finetune.lr (0.0001)"),
    ({"finetune": {"num_steps": 0}}, "finetune.num_steps (0) must be in [1, min(finetune.t_stars)] = [1, 30]"),
    ({"finetune": {"gan_weight": -0.1}}, "finetune.gan_weight"),
    ({"finetune": {"gan_lr": 0}}, "finetune.gan_lr"),
    ({"finetune": {"t_stars": []}}, "finetune.t_stars"),
    ({"finetune": {"adversarial_weight": 1.5}}, "finetune.adversarial_weight"),
    ({"finetune": {"mode": "mixed", "batch_size": 1}}, "finetune.batch_size"),
    ({"finetune": {"trainable": "some"}}, "finetune.trainable must be 'all'"),
    ({"finetune": {"trainable": []}}, "finetune.trainable"),
    ({"finetune": {"trainable": ["head."]}}, "finetune.trainable"),
    ({"finetune": {"trainable": ["head", "head"]}}, "finetune.trainable lists a prefix twice"),
])
def test_bad_training_params_name_the_culprit(raw, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert culprit in str(info.value)


def test_restorer_names_are_plain_strings_in_the_schema():
    """The registry is the only list of restorer names; the schema accepts any name (preflight checks it)."""
    p = params_from_dict({"train": {"models": [{"name": "not_registered_yet", "kwargs": {"width": 4}}]}})
    assert p.train.models == (ModelSpec("not_registered_yet", {"width": 4}),)
    assert p.train.run("not_registered_yet").kwargs == {"width": 4}


@pytest.mark.parametrize("num_steps, ok", [(None, True), (1, True), (30, True), (31, False)])
def test_finetune_num_steps_at_most_the_smallest_t_star(num_steps, ok):
    raw = {"finetune": {"t_stars": [50, 30, 70], "num_steps": num_steps}}
    if ok:
        assert params_from_dict(raw).finetune.num_steps == num_steps
        return
    with pytest.raises(ConfigError, match=r"finetune.num_steps \(31\) exceeds the smallest of finetune.t_stars \(30\)"):
        params_from_dict(raw)


@pytest.mark.parametrize("budget, ok", [(1, True), (256, True), (0, False), (257, False), (-8, False)])
def test_finetune_attack_budget_in_1_to_256(budget, ok):
    raw = {"finetune": {"attack_budget": budget}}
    if ok:
        assert params_from_dict(raw).finetune.attack_budget == budget
        return
    with pytest.raises(ConfigError, match=r"finetune.attack_budget must be an integer number of 1/256 steps "
                                          r"in \[1, 256\]"):
        params_from_dict(raw)


def test_finetune_attack_budget_must_be_an_integer():
    with pytest.raises(ConfigError, match="finetune.attack_budget must be an integer"):
        params_from_dict({"finetune": {"attack_budget": 4.5}})


def test_own_model_spec_label_weights_and_train():
    """A user's model: `module:callable` with a label, given weights, not trained."""
    p = params_from_dict({"train": {"models": [
        {"name": "mypkg.nets:make_net", "label": "mynet", "weights": "weights/mynet.safetensors", "train": False},
        {"name": "resunet", "kwargs": {"depth": 1}}]}})
    own, builtin = p.train.models
    assert (own.name, own.label, own.weights, own.train) == ("mypkg.nets:make_net", "mynet",
                                                             "weights/mynet.safetensors", False)
    assert (builtin.label, builtin.weights, builtin.train) == ("resunet", None, True)  # label defaults to the name
    assert ModelSpec("resunet", label="resunet-pretrained").label == "resunet-pretrained"


@pytest.mark.parametrize("spec, culprit", [
    ({"name": "mypkg.nets:make_net"}, "train.models[0].label is required when train.models[0].name is a factory "
                                      "reference ('mypkg.nets:make_net'): the model's identity in paths and reports, "
                                      "e.g. 'make_net'"),
    ({"name": "mypkg.nets:", "label": "x"}, "train.models[0].name 'mypkg.nets:' must be a registered restorer"),
    ({"name": "a:b:c", "label": "x"}, "train.models[0].name 'a:b:c' must be"),
    ({"name": "my-pkg:make", "label": "x"}, "train.models[0].name 'my-pkg:make' must be"),
    ({"name": "mypkg:make", "label": "my/net"}, "train.models[0].label 'my/net' must be letters, digits"),
    ({"name": "resunet", "label": "res.net"}, "train.models[0].label 'res.net' must be"),
    ({"name": "resunet", "label": "-x"}, "train.models[0].label '-x' must be"),
    ({"name": "resunet", "train": False}, "train.models[0].train is false but train.models[0].weights is not set"),
    ({"name": "resunet", "weights": " "}, "train.models[0].weights must be a path"),
    ({"name": "resunet", "train": "no"}, "train.models[0].train must be true or false"),
    ({"name": "resunet", "weights": 3}, "train.models[0].weights"),
])
def test_bad_own_model_specs_name_the_key(spec, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict({"train": {"models": [spec]}})
    assert culprit in str(info.value)


def test_seeds_expand_every_model_into_runs():
    """Seed 0 is the model itself; every other seed a replicate `<label>-seed<s>`, model-major."""
    p = params_from_dict({"train": {"seeds": [0, 3], "models": [
        {"name": "resunet", "kwargs": {"depth": 1}}, {"name": "resunet", "label": "wide", "kwargs": {"depth": 2}}]}})
    assert [r.label for r in p.train.runs()] == ["resunet", "resunet-seed3", "wide", "wide-seed3"]
    assert p.train.run("wide-seed3").kwargs == {"depth": 2} and p.train.run("wide-seed3").name == "resunet"
    assert p.train.seed_groups() == {"resunet": ["resunet", "resunet-seed3"], "wide": ["wide", "wide-seed3"]}
    assert [r.label for r in params_from_dict({}).train.runs()] == ["resunet"]  # default: one run, no replicate
    with pytest.raises(KeyError, match="no restorer 'resunet-seed1'"):
        p.train.run("resunet-seed1")


@pytest.mark.parametrize("train, culprit", [
    ({"seeds": []}, "train.seeds must be a non-empty list of ints >= 0, got []"),
    ({"seeds": [0, -1]}, "train.seeds must be a non-empty list of ints >= 0"),
    ({"seeds": [0, True]}, "train.seeds[1] must be an integer, got bool True"),
    ({"seeds": [1, 1]}, "train.seeds lists a seed twice: [1, 1]"),
    ({"seeds": [0, 1], "models": [{"name": "resunet"}, {"name": "resunet", "label": "resunet-seed1"}]},
     "train.seeds: the replicate names"),
    ({"models": [{"name": "resunet"}, {"name": "resunet"}]}, "train.models lists a restorer twice"),
])
def test_bad_seeds_name_the_key(train, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict({"train": train})
    assert culprit in str(info.value)
