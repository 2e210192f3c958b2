"""Shipped configs by name, dotted overrides (--set) and smoke variants."""

import dataclasses
import re

import pytest

from acljax import configs
from acljax.acl.config import ACLConfig, ModelConfig
from acljax.data.episodes import TaskSpec
from acljax.demo import RecallDemoConfig
from acljax.srwm import SRWMOptions


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
                                      "warmup_steps=100", "adam_eps=1", "pools.0.dataset=omniglot",
                                      "model.srwm.impl=scan", "model.srwm.chunk_size=8", "model.srwm.beta_init=-1"])
    srwm = SRWMOptions(impl="scan", chunk_size=8, beta_init=-1.0)
    expected = dataclasses.replace(
        base, model=dataclasses.replace(base.model, num_heads=8, mlp_features=(64, 32), srwm=srwm), learning_rate=3e-4,
        tasks=(TaskSpec(5, 5, 5), TaskSpec(5, 1, 5)), use_acl=False, init_from="runs/x", warmup_steps=100,
        adam_eps=1.0, pools=(dataclasses.replace(base.pools[0], dataset="omniglot"),))
    assert changed == expected
    assert isinstance(changed.adam_eps, float) and isinstance(changed.model.srwm.beta_init, float)
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
    ("model.srwm=3", "give one field inside it"),
    ("model.impl=scan", "ModelConfig has no field 'impl'; its fields: .*, srwm"),
    ("model.srwm.impl=cuda", r"^--set 'model.srwm.impl=cuda': SRWMOptions.impl must be 'auto' or one of \['pallas', "),
    ("model.srwm.n_beta=2", r"SRWMOptions.n_beta must be 1 \(one shared learning rate\) or 4 \(one per block\), got 2"),
    ("model.srwm.input_softmax=1", "the field holds False; give a value of type bool, got 1"),
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


def test_a_config_json_with_the_srwm_options_flat_in_model_loads_them_into_model_srwm():
    """Workdirs written before ModelConfig.srwm hold state_gradient, impl and precision in model (no other SRWM
    option was ever a ModelConfig field: a flat chunk_size is an unknown field)."""
    from acljax.acl.config import config_from_dict

    old = {"pools": [{"dataset": "glyphs", "split": "background", "size": 32, "channels": 1}],
           "tasks": [{"n_way": 5, "k_shot": 5, "num_queries": 5}], "batch_size": 16, "steps": 5000,
           "model": {"encoder": "mlp", "num_classes": 10, "num_features": 128, "num_heads": 8, "hidden_features": 256,
                     "state_gradient": "official", "impl": "scan", "precision": "high"}}
    config = config_from_dict(old)
    assert config.model.srwm == SRWMOptions(state_gradient="official", impl="scan", precision="high")
    assert (config.model.encoder, config.model.num_features, config.model.num_heads) == ("mlp", 128, 8)
    assert config_from_dict(dataclasses.asdict(config)) == config  # today's form reads back as written
    old["model"]["impl"] = "cuda"
    with pytest.raises(ValueError, match=r"^config: model.srwm: SRWMOptions.impl must be one of \('auto', "):
        config_from_dict(old)
    with pytest.raises(ValueError, match="^config: model has both 'srwm' and the older flat 'impl', 'precision'"):
        config_from_dict(_saved(**{"model.impl": "scan", "model.precision": "high"}))
    old["model"]["impl"], old["model"]["chunk_size"] = "scan", 8
    with pytest.raises(ValueError, match="chunk_size"):
        config_from_dict(old)


def test_overrides_are_applied_together_then_validated_once_in_any_order():
    """checkpoint_every must be a multiple of log_every: valid together, invalid one at a time from the defaults
    (log_every=50), so no order of the three may be refused."""
    import itertools

    assignments = ["validate_every=2", "checkpoint_every=2", "log_every=1"]
    expected = dataclasses.replace(ACLConfig(), validate_every=2, checkpoint_every=2, log_every=1)
    for order in itertools.permutations(assignments):
        assert configs.override(ACLConfig(), list(order)) == expected, order


def test_overrides_that_contradict_each_other_are_named_together():
    with pytest.raises(ValueError) as error:
        configs.override(ACLConfig(), ["log_every=3", "steps=10", "checkpoint_every=4"])
    message = str(error.value)
    assert message.startswith("--set 'log_every=3' --set 'checkpoint_every=4': ACLConfig.checkpoint_every must be "
                              "a multiple of log_every=3")
    assert "steps=10" not in message  # not involved
    with pytest.raises(ValueError) as error:  # "size" stands inside "batch_size", but names another field
        configs.override(ACLConfig(), ["pools.0.size=28", "batch_size=0"])
    assert str(error.value).startswith("--set 'batch_size=0': ACLConfig.batch_size must be a positive int, got 0")


@pytest.mark.parametrize("assignment, message", [
    ("model.mlp_features=()", "ModelConfig.mlp_features must be a non-empty sequence of positive ints"),
    ("model.mlp_features=[-5]",
     r"ModelConfig.mlp_features must be a non-empty sequence of positive ints .*got \(-5,\)"),
    ('model.mlp_features=["a"]', r"ModelConfig.mlp_features must be a tuple \(JSON: a list\), each item an int, "
                                 r"got \('a',\)"),
    ("model.hidden_features=0", "ModelConfig.hidden_features must be a positive int or None, got 0"),
    ("model.conv_channels=0", "ModelConfig.conv_channels must be a positive int, got 0"),
    ("model.num_features=30",
     r"ModelConfig.num_features must be a positive multiple of num_heads=16 \(D = H \* d\), got 30"),
    ("model.dropout_rate=1", r"ModelConfig.dropout_rate must be in \[0, 1\), got 1"),
    ("model.num_classes=0", "ModelConfig.num_classes must be a positive int, got 0"),
    ("pools.0.size=100000", "PoolConfig.size must be None .* or an int from 4 to 1024"),
    ("pools.0.channels=2", "PoolConfig.channels must be 1, 3 or None"),
    ("seed=-1", "ACLConfig.seed must be an int from 0 to 2\\*\\*63 - 1, got -1"),
    ("num_devices=0", "ACLConfig.num_devices must be a positive int, got 0"),
])
def test_model_and_data_sizes_the_model_cannot_take_are_refused_naming_the_assignment(assignment, message):
    with pytest.raises(ValueError, match=f"^--set {re.escape(repr(assignment))}: {message}"):
        configs.override(ACLConfig(), [assignment])


CONFIG_FILES = {
    "returns_dict.py": ("def get_config():\n    return {'steps': 3}\n",
                        "get_config() must return an ACLConfig (a dataclass instance), got dict"),
    "raises.py": ("def get_config():\n    return 1 / 0\n", "get_config() failed: ZeroDivisionError: division by zero"),
    "broken.py": ("def get_config(:\n", "the file failed to run (SyntaxError: "),
    "imports.py": ("import no_such_module_here\n", "the file failed to run (ModuleNotFoundError: "),
}


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_a_config_file_that_fails_or_returns_something_else_is_one_error_naming_it(tmp_path, name):
    text, message = CONFIG_FILES[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"--config {tmp_path / name}: {message}")):
        configs.load(str(tmp_path / name), ACLConfig)


def test_rotated_task_orders_need_one_first_shot_setting():
    """With cycle_orders, every rotation must have the same terms (the log names a window's sums by position)."""
    from acljax.data.episodes import TaskSpec

    mixed = (TaskSpec(2, 1, 1, first_shot=True), TaskSpec(2, 1, 1))
    with pytest.raises(ValueError, match=r"ACLConfig.cycle_orders=True needs every task with the same first_shot .* "
                                         r"got first_shot \[True, False\]"):
        ACLConfig(tasks=mixed, cycle_orders=True)
    assert ACLConfig(tasks=mixed).tasks == mixed  # one order: fine


def test_an_empty_config_name_is_refused_as_such():
    with pytest.raises(FileNotFoundError, match="^--config '': neither a shipped config"):
        configs.load("")


def _saved(**changes):
    saved = dataclasses.asdict(ACLConfig(model=ModelConfig(encoder="mlp")))
    for path, value in changes.items():
        *parents, key = path.split(".")
        node = saved
        for parent in parents:
            node = node[int(parent)] if parent.isdigit() else node[parent]
        if value is _saved:
            del node[key]
        else:
            node[key] = value
    return saved


@pytest.mark.parametrize("saved, message", [
    (_saved(extra=1), "the config has no field 'extra' \\(ACLConfig's fields: pools, tasks, "),
    (_saved(**{"model.extra": 1}), "model has no field 'extra' \\(ModelConfig's fields: encoder, "),
    (_saved(model=_saved), "the config has no 'model'"),
    ([], "the config must be a JSON object of ACLConfig's fields, got \\[\\]"),
    (_saved(pools={}), "pools must be a list of PoolConfig objects, got {}"),
    (_saved(learning_rate="0.001"), "ACLConfig.learning_rate must be a number, got '0.001'"),
    (_saved(use_acl="yes"), "ACLConfig.use_acl must be true or false, got 'yes'"),
    (_saved(**{"tasks.0.label_offset": "1"}), "tasks.0: TaskSpec.label_offset must be an int, got '1'"),
    (_saved(**{"pools.0.size": 10 ** 5}), "pools.0: PoolConfig.size must be None \\(as stored\\) or an int from 4 "
                                          "to 1024"),
    (_saved(**{"model.mlp_features": ["a"]}), "model: ModelConfig.mlp_features must be a tuple"),
    (_saved(**{"model.srwm.extra": 1}), "model.srwm has no field 'extra' \\(SRWMOptions's fields: n_beta, "),
    (_saved(**{"model.srwm.chunk_size": 0}),
     "model.srwm: SRWMOptions.chunk_size must be a positive int or None, got 0"),
    (_saved(**{"model.srwm.input_softmax": 1}), "model.srwm: SRWMOptions.input_softmax must be true or false, got 1"),
    (_saved(**{"model.srwm": "scan"}), "model.srwm must be a JSON object of SRWMOptions's fields, got 'scan'"),
])
def test_a_crafted_config_json_is_one_error_naming_the_file_and_the_field(saved, message):
    from acljax.acl.config import config_from_dict

    with pytest.raises(ValueError, match=f"^runs/x/config.json: {message}"):
        config_from_dict(saved, "runs/x/config.json")
