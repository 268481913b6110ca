import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from ops.cluster import local_system_config

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def load() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_matches_ray_autoscaler_schema():
    validate_config(prepare_config(load()))


def test_cluster_has_cpu_head_gpu_workers_and_installs_project():
    config = load()
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    assert head["node_config"]["InstanceType"].startswith("m")  # a CPU instance family
    assert any(t["node_config"]["InstanceType"].startswith("p") for t in node_types.values())
    assert any("pip install" in cmd and "instructflow" in cmd for cmd in config["setup_commands"])


def test_schema_rejects_a_misspelt_key():
    config = load()
    config["available_node_types"]["gpu_worker"]["max_workerz"] = 1
    with pytest.raises(jsonschema.ValidationError, match="max_workerz"):
        validate_config(prepare_config(config))


def test_the_head_starts_with_the_system_config_of_local_ray():
    (start,) = [c for c in load()["head_start_ray_commands"] if c.startswith("ray start")]
    found = re.search(r"--system-config='([^']*)'", start)
    assert found, start
    assert json.loads(found.group(1)) == local_system_config()
