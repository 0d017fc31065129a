import json

import numpy as np
import pytest

from matseg_ros.materials import MaterialMap, MaterialsError, load_materials
from matseg_ros.runtime.modelmeta import ModelMetadata, ModelMetadataError

HRIM = {0: ("background", (0, 0, 0)), 1: ("ceramic", (240, 143, 192)), 2: ("fabric", (49, 206, 112)),
        3: ("glass", (81, 194, 213)), 4: ("metal", (120, 122, 145)), 5: ("paper", (255, 201, 71)),
        6: ("plastic", (236, 70, 70)), 7: ("stone", (0, 90, 141)), 8: ("wood", (245, 169, 98))}


def test_shipped_map_is_the_design_table(materials):
    assert {m.id: (m.name, m.color) for m in materials} == HRIM
    assert materials.num_classes == 9 and materials.is_contiguous()
    lut = materials.palette_lut()
    assert lut.shape == (256, 3) and tuple(lut[6]) == (236, 70, 70) and not lut[255].any()


@pytest.mark.parametrize("entries, message", [
    ([{"id": 0, "name": "a", "color": [0, 0, 0]}, {"id": 0, "name": "b", "color": [1, 1, 1]}],
     "duplicate id 0"),
    ([{"id": 0, "name": "a", "color": [0, 0, 0]}, {"id": 1, "name": "a", "color": [1, 1, 1]}],
     "duplicate name 'a'"),
    ([{"id": 0, "name": "a", "color": [0, 0, 0]}, {"id": 1, "name": "b", "color": [0, 0, 0]}],
     "duplicate color (0, 0, 0)"),
    ([{"id": 255, "name": "a", "color": [0, 0, 0]}], "id must be an integer in 0..254"),
    ([{"id": 1, "name": "a", "color": [0, 0, 300]}], "color must be [r, g, b]"),
    ([{"id": 1, "name": "a"}], "missing key(s) ['color']"),
])
def test_bad_entries_are_named(entries, message):
    with pytest.raises(MaterialsError) as info:
        MaterialMap.from_entries(entries, "x.yaml")
    assert message in str(info.value) and "x.yaml: classes[" in str(info.value)


def test_bad_file_names_the_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("classes: [ {id: 0")
    with pytest.raises(MaterialsError, match="m.yaml: not valid YAML"):
        load_materials(path)
    with pytest.raises(MaterialsError, match="cannot read"):
        load_materials(tmp_path / "missing.yaml")


def test_metadata_round_trip_and_errors(materials):
    meta = ModelMetadata(materials, input_size=(384, 512), architecture="DeepLab", backbone="resnet18")
    props = meta.to_props()
    assert json.loads(props["matseg.classes"])[3] == {"id": 3, "name": "glass", "color": [81, 194, 213]}
    assert ModelMetadata.from_props(props, "m.onnx") == meta
    del props["matseg.mean"]
    with pytest.raises(ModelMetadataError, match="m.onnx: model metadata lacks 'matseg.mean'"):
        ModelMetadata.from_props(props, "m.onnx")
    props = meta.to_props() | {"matseg.input_size": "[0, 5]"}
    with pytest.raises(ModelMetadataError, match="input_size"):
        ModelMetadata.from_props(props, "m.onnx")
    assert np.array_equal(ModelMetadata.from_checkpoint(meta.to_checkpoint_entries(), "c.pt").classes.colors(),
                          materials.colors())
