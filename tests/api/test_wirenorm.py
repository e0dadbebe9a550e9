"""from_wire: null is absent, empty label/annotation maps vanish, the input is left alone."""

from __future__ import annotations

from nbkube.api.wirenorm import from_wire


def test_nulls_dropped_at_any_depth_and_input_untouched() -> None:
    template = {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}, "annotations": {}},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {}, "command": None}]},
    }
    obj = {"kind": "Deployment", "metadata": {"name": "d", "labels": {}}, "spec": {"template": template}}
    out = from_wire(obj)
    assert out == {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                # other empty maps mean something (resources: {}, emptyDir: {}) and stay
                "spec": {"containers": [{"name": "c", "image": "x", "resources": {}}]},
            }
        },
    }
    assert obj["metadata"]["labels"] == {} and template["metadata"]["creationTimestamp"] is None
    out["spec"]["template"]["spec"]["containers"][0]["name"] = "changed"
    assert template["spec"]["containers"][0]["name"] == "c"


def test_null_list_items_are_kept_for_validation() -> None:
    assert from_wire({"args": ["a", None]}) == {"args": ["a", None]}
