"""Bundle files are untrusted input: wrong structure, non-finite weights and pickled
objects are refused with errors naming the field or tensor, never with torch's advice
to load with ``weights_only=False``."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from archgen.api import bundled_path
from archgen.bundle import Bundle, BundleNotFoundError
from archgen.errors import ArchGenError, BundleError


@pytest.fixture(scope="module")
def payload():
    """The shipped NB201 bundle's payload, read the safe way."""
    return torch.load(bundled_path("nb201"), map_location="cpu", weights_only=True)


def _refused(tmp_path, payload, match: str) -> str:
    path = tmp_path / "b.pt"
    torch.save(payload, path)
    with pytest.raises(BundleError, match=match) as info:
        Bundle.load(path)
    assert isinstance(info.value, ArchGenError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert "weights_only" not in message and len(message) < 800, message
    return message


def _changed(payload, *keys, value=None, delete=False):
    p = copy.copy(payload)
    parent = p
    for key in keys[:-1]:
        parent[key] = copy.copy(parent[key])
        parent = parent[key]
    if delete:
        del parent[keys[-1]]
    else:
        parent[keys[-1]] = value
    return p


def test_shipped_payload_loads(payload, tmp_path):
    torch.save(payload, tmp_path / "same.pt")
    bundle = Bundle.load(tmp_path / "same.pt")
    assert bundle.space == "nb201" and set(bundle.generators) == {"diffusion", "autoregressive"}


@pytest.mark.parametrize("keys, value, delete, match", [
    (("generators",), [], False, r"field bundle\.generators must be dict or None, got list"),
    (("latency",), None, True, r"bundle lacks the field 'latency'"),
    (("accuracy",), "weights", False, r"field bundle\.accuracy must be dict, got str"),
    (("space",), 201, False, r"field bundle\.space must be str, got int"),
    (("space",), "nb999", False, r"field bundle\.space of .* names no search space: 'nb999'"),
    (("meta",), [1, 2], False, r"field bundle\.meta must be dict or None, got list"),
    (("latency", "norms"), None, True, r"latency lacks the field 'norms'"),
    (("latency", "targets"), "pixel3", False, r"field latency\.targets must be list, got str"),
    (("latency", "kind"), "accuracy", False, r"field latency\.kind is 'accuracy'"),
    (("accuracy", "state"), [1.0], False, r"field accuracy\.state must be dict, got list"),
    (("accuracy", "state", "weights"), [[1.0]], False, r"accuracy\.state must map parameter names to tensors; 'weights'"),
    (("latency", "norms", "pixel3"), [1.0, 2.0], False, r"field latency\.norms\['pixel3'\] must be 3 finite numbers"),
    (("latency", "norms", "pixel3"), [0.0, float("nan"), 0.1], False, r"latency\.norms\['pixel3'\] must be 3 finite"),
    (("latency", "prior", "slack"), float("inf"), False, r"field latency\.prior\.slack must be finite numbers, got inf"),
    (("latency", "prior", "bogus"), 1.0, False, r"field latency is incomplete or inconsistent: .*bogus"),
    (("accuracy", "memory", "shift"), None, True, r"accuracy\.memory lacks the field 'shift'"),
    (("generators", "diffusion", "kind"), "gan", False, r"field generators\.diffusion\.kind must be one of diffusion"),
    (("generators", "diffusion", "state"), None, True, r"generators\.diffusion lacks the field 'state'"),
    (("generators", "autoregressive", "training_digests"), [1, 2], False,
     r"field generators\.autoregressive\.training_digests must be Tensor, got list"),
    (("generators", "diffusion", "config", "hidden"), "wide", False, r"field generators\.diffusion is incomplete"),
])
def test_wrong_structure_names_the_field(payload, tmp_path, keys, value, delete, match):
    _refused(tmp_path, _changed(payload, *keys, value=value, delete=delete), match)


def test_wrong_shapes_name_the_field(payload, tmp_path):
    state = dict(payload["generators"]["diffusion"]["state"])
    name = next(k for k, v in state.items() if v.dim() == 2)
    state[name] = state[name][:1]
    _refused(tmp_path, _changed(payload, "generators", "diffusion", "state", value=state),
             rf"field generators\.diffusion is incomplete or inconsistent: .*size mismatch for {name}")


@pytest.mark.parametrize("where, bad", [("latency", float("nan")), ("accuracy", float("inf")),
                                        ("generators.diffusion", float("-inf"))])
def test_non_finite_weights_are_refused_naming_the_tensor(payload, tmp_path, where, bad):
    parts = where.split(".")
    state = dict(payload[parts[0]]["state"] if len(parts) == 1 else payload[parts[0]][parts[1]]["state"])
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 3)
    tensor = state[name].clone()
    tensor.view(-1)[[0, 2]] = bad
    state[name] = tensor
    changed = _changed(payload, *parts, "state", value=state)
    message = _refused(tmp_path, changed, r"holds 2 NaN or infinite value\(s\)")
    shown = f"state['{name}']" if "." in name else f"state.{name}"
    assert f"tensor bundle.{where}.{shown} (shape {tuple(tensor.shape)})" in message


def test_non_finite_feature_table_is_refused(payload, tmp_path):
    table = payload["accuracy"]["feature_table"].clone()
    table[1, 100, 3] = float("nan")
    _refused(tmp_path, _changed(payload, "accuracy", "feature_table", value=table),
             r"tensor bundle\.accuracy\.feature_table \(shape \(3, 15625, 9\)\) holds 1 NaN")


class Payload:
    """Runs a shell command when unpickled (what a malicious checkpoint does)."""

    def __reduce__(self):
        return (os.system, ("echo archgen-was-here > /dev/null",))


@pytest.mark.parametrize("obj", [Payload(), {"format": 2, "meta": __import__("fractions").Fraction(1, 3)}])
def test_pickled_objects_are_refused_without_weights_only_advice(tmp_path, obj):
    path = tmp_path / "evil.pt"
    torch.save(obj if isinstance(obj, dict) else {"format": 2, "latency": obj}, path)
    with pytest.raises(BundleError) as info:
        Bundle.load(path)
    message = str(info.value)
    assert message.endswith("this file contains Python objects, not only tensors; archgen never unpickles code: "
                            "regenerate it with `archgen pretrain`")
    assert "weights_only" not in message and "trust" not in message


@pytest.mark.parametrize("case, error, match", [
    ("missing", BundleNotFoundError, "does not exist"),
    ("directory", BundleError, "is a directory"),
    ("empty", BundleError, r"is empty \(0 bytes\)"),
    ("garbage", BundleError, r"is not a readable archgen bundle \(not a torch.save archive, or a damaged one\)"),
    ("truncated", BundleError, r"is not a readable archgen bundle \(not a torch.save archive, or a damaged one\)"),
    ("bad_member", BundleError, r"is not a readable archgen bundle \(RuntimeError: "),
    ("list", BundleError, r"is not an archgen bundle of format 2 \(found format 'list'\)"),
])
def test_file_errors(tmp_path, case, error, match):
    path = tmp_path / "b.pt"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(os.urandom(4096))
    elif case == "truncated":
        data = bundled_path("nb201").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "bad_member":  # a whole zip archive whose tensor data is cut short
        import zipfile

        with zipfile.ZipFile(bundled_path("nb201")) as src, zipfile.ZipFile(path, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                dst.writestr(item, data[: len(data) // 2] if "/data/" in item.filename else data)
    elif case == "list":
        torch.save([1, 2, 3], path)
    with pytest.raises(error, match=match) as info:
        Bundle.load(path)
    assert isinstance(info.value, ArchGenError) and "weights_only" not in str(info.value)
    if case == "missing":
        assert isinstance(info.value, FileNotFoundError)
