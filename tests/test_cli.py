import json

import onnx

from archgen.cli import main
from conftest import BEST_C10


def test_help(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for command in ("spaces", "show", "export", "measure"):
        assert command in out


def test_spaces(capsys):
    assert main(["spaces"]) == 0
    assert "nb201" in capsys.readouterr().out


def test_show_text_and_json(capsys):
    assert main(["show", BEST_C10]) == 0
    out = capsys.readouterr().out
    assert "parameters     1,288,506" in out and "FLOPs" in out and "nor_conv_3x3 <- 0" in out
    assert main(["show", BEST_C10, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 1288506 and len(info["graph"]["nodes"]) == 8


def test_export_and_measure(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", BEST_C10, str(out)]) == 0
    onnx.checker.check_model(str(out))
    assert main(["measure", BEST_C10, "--repeats", "3", "--warmup", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["median_ms"] > 0


def test_errors_are_one_line_not_tracebacks(capsys):
    assert main(["show", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archgen show: error: token 'conv~0'") and "Traceback" not in err
    assert main(["show", BEST_C10, "--space", "nb999"]) == 2
    assert "unknown search space 'nb999'; valid: anb, fbnet, mbv3, nb201" in capsys.readouterr().err
    assert main(["measure", BEST_C10, "--batch-size", "0"]) == 2
