"""Settings of a custom file-based ExampleGen, carried in its `custom_config` exec property.

FileBasedExampleGen only takes a CustomConfig proto (an Any); a Struct inside keeps the settings plain JSON,
readable in ML Metadata and in a compiled Kubeflow package."""

from typing import Any, Dict

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs


def pack(settings: Dict[str, Any]) -> example_gen_pb2.CustomConfig:
    struct = struct_pb2.Struct()
    struct.update(settings)
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def unpack(exec_properties: Dict[str, Any], component: str) -> Dict[str, Any]:
    config = example_gen_pb2.CustomConfig()
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if isinstance(raw, str) and raw:
        json_format.Parse(raw, config)
    elif raw:
        config.CopyFrom(raw)
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct):
        raise ValueError(f"{component} needs its custom_config settings; build it with its own constructor")
    return json_format.MessageToDict(struct)
