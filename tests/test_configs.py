"""Shipped configs by name, dotted overrides (--set) and smoke variants."""

import dataclasses

import pytest

from acljax import configs
from acljax.acl.config import ACLConfig, ModelConfig
from acljax.data.episodes import TaskSpec
from acljax.demo import RecallDemoConfig


def test_every_shipped_config_loads_by_name_and_has_a_valid_smoke_variant():
    assert {"acl_glyphs_quickstart", "acl_glyphs_2task", "acl_paper_2task", "acl_paper_3task",
            "acl_split_mnist_domain", "acl_split_mnist_class", "recall_demo"} <= set(configs.NAMES)
    for name in configs.NAMES:
        config = configs.load(name)
        small = configs.smoke(config)  # the config classes validate the shrunk values
        assert small.steps == 2 and small.batch_size == 2, name
        assert type(small) is type(config) and small.seed == config.seed, name
        if isinstance(config, ACLConfig):
            assert small.model == config.model and small.tasks == config.tasks, name
            assert (small.validation_batches, small.test_batches, small.validate_every) == (1, 1, 2), name
    assert configs.smoke(RecallDemoConfig()).eval_sequences == 8


def test_overrides_reach_nested_fields_and_tuple_items():
    base = ACLConfig(tasks=(TaskSpec(5, 5, 5), TaskSpec(5, 5, 5)), model=ModelConfig(num_heads=16))
    changed = configs.override(base, ["model.num_heads=8", "learning_rate=3e-4", "tasks.1.k_shot=1",
                                      "model.mlp_features=[64, 32]", "use_acl=False", "init_from=runs/x",
                                      "warmup_steps=100", "adam_eps=1", "pools.0.dataset=omniglot"])
    expected = dataclasses.replace(
        base, model=dataclasses.replace(base.model, num_heads=8, mlp_features=(64, 32)), learning_rate=3e-4,
        tasks=(TaskSpec(5, 5, 5), TaskSpec(5, 1, 5)), use_acl=False, init_from="runs/x", warmup_steps=100,
        adam_eps=1.0, pools=(dataclasses.replace(base.pools[0], dataset="omniglot"),))
    assert changed == expected
    assert isinstance(changed.adam_eps, float)
    assert configs.override(changed, ["init_from=None"]).init_from is None


@pytest.mark.parametrize("assignment, message", [
    ("model.num_head=4", "ModelConfig has no field 'num_head'; its fields: encoder, "),
    ("learning_rate=abc", "the field holds 0.001; give a value of type float, got 'abc'"),
    ("batch_size=2.5", "give a value of type int, got 2.5"),
    ("use_acl=1", "give a value of type bool, got 1"),
    ("tasks.2.k_shot=1", "'2' does not index a value of type tuple \\(indices 0..1\\)"),
    ("model=3", "give one field inside it"),
    ("pools=[]", "give one field inside it"),
    ("steps", "expected FIELD=VALUE"),
    ("batch_size=0", "ACLConfig.batch_size must be a positive int, got 0"),  # the config's own check
    ("model.encoder=rnn", "ModelConfig.encoder must be one of"),
    ("model.feedback_scale=0", "ModelConfig.feedback_scale must be a finite number > 0, got 0"),
])
def test_a_bad_override_is_an_error_naming_it(assignment, message):
    with pytest.raises(ValueError, match=message):
        configs.override(ACLConfig(), [assignment])


def test_a_config_that_does_not_exist_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="--config acl_glyph: neither a shipped config \\(.*acl_glyphs_2task, .*"
                                                "acl_glyphs_quickstart, .*\\) nor a .py file"):
        configs.load("acl_glyph")


def test_a_config_json_from_before_a_model_field_existed_loads_with_its_default():
    from acljax.acl.config import config_from_dict

    saved = dataclasses.asdict(ACLConfig(model=ModelConfig(encoder="mlp")))
    del saved["model"]["feedback_scale"]  # the shipped models' config.json files have no such field
    assert config_from_dict(saved).model == ModelConfig(encoder="mlp", feedback_scale=1.0)
