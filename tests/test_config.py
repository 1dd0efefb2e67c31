"""One schema, validated in one place: bad configs stop with one line naming the key."""

import pytest

from experiments.config import ConfigError, PeelConfig, load_config, set_override


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_demo():
    config = PeelConfig()
    assert config.architectures == ["central", "local", "fedavg", "fedavg-dp"]
    assert config.privacy.epsilon == 1.0 and config.data.agencies == 8


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("privacy:\n  epsilon: 0\n", "privacy.epsilon"),
        ("privacy:\n  epsilon: -1\n", "privacy.epsilon"),
        ("privacy:\n  epsilon: .inf\n", "privacy.epsilon"),
        ("privacy:\n  delta: 1\n", "privacy.delta"),
        ("federation:\n  rounds: 0\n", "federation.rounds"),
        ("federation:\n  rounds: ten\n", "federation.rounds"),
        ("bogus: 1\n", "bogus: unknown key"),
        ("privacy:\n  epsilonn: 1\n", "privacy.epsilonn: unknown key"),
        ("architectures: [fedavg, magic]\n", "architectures.1"),
        ("architectures: [fedavg, fedavg]\n", "architectures"),
        ("architectures: []\n", "architectures"),
        ("data:\n  source: police_uk\n", "data.path"),
        ("data:\n  source: police_uk\n  path: /no/such/folder\n", "data.path"),
        ("data:\n  agency:\n    pattern: '(a)(b)'\n", "data.agency.pattern"),
        ("data:\n  agency:\n    column: County\n", "data.agency.column"),
        ("task:\n  positive: [Solved]\n", "task.positive"),
        ("task:\n  test_months: 24\n", "task.test_months"),
        ("privacy: [1, 2]\n", "privacy"),
        ("- just a list\n", "mapping"),
        ("privacy:\n  epsilon: [1\n", "invalid YAML"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert fragment in message
    assert str(path) in message
    assert "\n" not in message


def test_yaml_error_names_line(tmp_path):
    path = write(tmp_path, "seed: 0\nprivacy:\n  epsilon: [1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+:\d+"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_set_overrides_take_yaml_values(tmp_path):
    path = write(tmp_path, "seed: 1\n")
    config = load_config(path, ["privacy.epsilon=2", "architectures=[fedavg, fedavg-dp]", "task.hidden=[8]"])
    assert config.privacy.epsilon == 2.0
    assert config.architectures == ["fedavg", "fedavg-dp"]
    assert config.task.hidden == [8]
    with pytest.raises(ConfigError, match="privacy.nope: unknown key"):
        load_config(path, ["privacy.nope=1"])


def test_set_rejects_malformed_assignments():
    raw = {"seed": 1}
    for bad in ("seed", "=3", "seed.x=1"):
        with pytest.raises(ConfigError):
            set_override(raw, bad)
