"""The template's parameters as the console offers them, checked as CloudFormation checks them."""

from __future__ import annotations

import pytest

from desktop.services.environments import Environment, aws_environment
from desktop.services.errors import ConfigurationError
from desktop.services.parameters import ParameterSpec, check, parameter_specs, template_specs

TEMPLATE = {
    "Parameters": {
        "ArtifactBucket": {"Type": "String"},
        "Replicas": {"Type": "Number", "Default": 1, "MinValue": 1, "MaxValue": 5},
        "Mode": {"Type": "String", "Default": "single", "AllowedValues": ["single", "per-az"]},
        "Stage": {
            "Type": "String",
            "Default": "prod",
            "AllowedPattern": "^[a-z]+$",
            "ConstraintDescription": "lowercase letters only.",
        },
        "Name": {"Type": "String", "MinLength": 3, "MaxLength": 5, "NoEcho": "true"},
    }
}


def test_the_backend_templates_parameters_are_offered_without_the_deploys_own():
    specs = {spec.name: spec for spec in template_specs()}
    assert "ArtifactBucket" not in specs and "ArtifactKey" not in specs
    replicas = specs["ReplicasPerShard"]
    assert (replicas.type, replicas.default, replicas.min_value, replicas.max_value) == (
        "Number",
        "1",
        1,
        5,
    )
    assert specs["NatGatewayMode"].allowed_values == ("single", "per-az")
    assert specs["FanoutConcurrency"].description  # shown under the field
    # Every default in the template passes the template's own constraints.
    assert all(spec.problem(spec.default) is None for spec in specs.values() if spec.default)


def test_each_constraint_says_what_to_change():
    specs = {spec.name: spec for spec in parameter_specs(TEMPLATE)}
    assert list(specs) == ["Replicas", "Mode", "Stage", "Name"]  # the template's order
    assert specs["Replicas"].problem("3") is None
    assert specs["Replicas"].problem("0") == "Replicas must be from 1 to 5."
    assert specs["Replicas"].problem("two") == "Replicas must be a number, not “two”."
    assert specs["Mode"].problem("both") == "Mode must be one of single, per-az."
    assert specs["Stage"].problem("Prod") == "Stage: lowercase letters only."
    assert specs["Stage"].problem("beta") is None
    assert specs["Name"].problem("ab") == "Name must be at least 3 characters long."
    assert specs["Name"].problem("abcdef") == "Name must be at most 5 characters long."
    assert specs["Name"].secret and specs["Name"].required


def test_one_sided_bounds_and_a_pattern_without_a_description():
    low = ParameterSpec("Low", "Number", min_value=0)
    high = ParameterSpec("High", "Number", max_value=10)
    shaped = ParameterSpec("Shaped", allowed_pattern="^x+$")
    assert low.problem("-1") == "Low must be at least 0."
    assert high.problem("11") == "High must be at most 10."
    assert shaped.problem("y") == "Shaped: the value does not have the required form."


def test_check_keeps_what_is_set_and_refuses_the_first_bad_value():
    specs = parameter_specs(TEMPLATE)
    assert check(specs, {"Replicas": " 2 ", "Mode": "", "Stage": ""}) == {"Replicas": "2"}
    with pytest.raises(ConfigurationError, match="Mode must be one of"):
        check(specs, {"Replicas": "2", "Mode": "both"})
    with pytest.raises(ConfigurationError, match="no parameter Colour"):
        check(specs, {"Colour": "blue"})


def test_an_unreadable_template_is_a_sentence(tmp_path):
    with pytest.raises(ConfigurationError, match="Could not read the CloudFormation template"):
        template_specs(tmp_path / "missing.yaml")


def test_an_environment_keeps_its_parameters_through_json():
    environment = aws_environment(
        "Staging",
        profile=None,
        region="eu-west-1",
        stack_name="classroom",
        parameters={"ReplicasPerShard": "2", "CacheNodeType": "cache.t4g.medium"},
    )
    assert environment.parameters == (
        ("CacheNodeType", "cache.t4g.medium"),
        ("ReplicasPerShard", "2"),
    )
    stored = environment.to_json()
    assert stored["parameters"] == {"CacheNodeType": "cache.t4g.medium", "ReplicasPerShard": "2"}
    assert Environment.from_json(stored) == environment
    # Environments stored before parameters existed still load.
    del stored["parameters"]
    assert Environment.from_json(stored).parameters == ()
    with pytest.raises(TypeError):
        Environment.from_json({**stored, "parameters": {"ReplicasPerShard": 2}})
