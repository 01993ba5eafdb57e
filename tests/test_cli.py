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


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_says_its_default():
    """Each option that takes a value says its default in --help (once), and
    --devices means benchmark devices everywhere (Lightning's are --trainer-devices)."""
    from archgen.cli import build_parser

    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) == {"spaces", "show", "export", "measure", "pretrain", "train", "generate", "calibrations",
                             "learn-task", "kernels", "calibrate"}
    for name, sub in commands.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            text = formatter._expand_help(action)
            assert "default" in text, (name, action.option_strings, text)
            assert text.count("default") == 1 and "default: None" not in text, (name, action.option_strings, text)
    assert "--trainer-devices" in commands["train"].format_help()
    assert "--devices " not in commands["train"].format_help()
    assert "benchmark devices" in commands["pretrain"].format_help()
    assert "random" in commands["generate"].format_help()


def test_version(capsys):
    from importlib.metadata import version

    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"archgen {version('archgen')}"


def test_spaces_print_plain_text(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "ofa_mbv3_d234_e346_k357_w1.0" in out
    assert "``" not in out and ":class:" not in out and "`" not in out


def test_plain_text_strips_rst():
    from archgen.cli.inspect import plain_text

    assert plain_text("OFA ``x_y`` and :class:`~a.b.Net`, :meth:`run <a.B.run>`, `c`") == "OFA x_y and Net, run, c"


def test_export_uses_the_space_classifier_width(tmp_path, capsys):
    fbnet_arch = "-".join(["k3_e1"] * 22)
    assert main(["export", fbnet_arch, str(tmp_path / "f.onnx"), "--space", "fbnet"]) == 0
    assert "100 classes" in capsys.readouterr().out  # FBNet's CIFAR-100 setting
    model = onnx.load(str(tmp_path / "f.onnx"))
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 100
    assert main(["export", BEST_C10, str(tmp_path / "n.onnx"), "--num-classes", "7"]) == 0
    assert "7 classes" in capsys.readouterr().out


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import archgen.measurements

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(archgen.measurements, "measure_archs", interrupted)
    assert main(["measure", BEST_C10, "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err == "archgen measure: interrupted; measurements finished so far are kept in the cache\n"
    assert main(["measure", BEST_C10, "--no-progress", "--no-cache"]) == 130
    assert capsys.readouterr().err == "archgen measure: interrupted; nothing was stored (--no-cache)\n"


def test_api_parameter_names_become_flags():
    from archgen.cli.messages import speak_cli

    flags = {"max_latency_ms": ("--max-latency-ms", "MS"), "device": ("--device", "DEVICE"), "n": ("-n", "N"),
             "samples": ("--samples", "SAMPLES"), "accelerator": ("--accelerator", "ACCELERATOR"),
             "root": ("--data", "DIR"), "margin": ("--margin", "MARGIN")}
    cases = {
        "max_latency_ms needs a device to predict latency on; pass device=...":
            "--max-latency-ms needs a device to predict latency on; pass --device DEVICE",
        "samples (10) must be at least n (20)": "--samples (10) must be at least -n (20)",
        "n must be from 1 to 10,000, got 0": "-n must be from 1 to 10,000, got 0",
        "accelerator='gpu': no CUDA GPU is visible; use accelerator='cpu'":
            "--accelerator gpu: no CUDA GPU is visible; use --accelerator cpu",
        "folder 'x' does not exist (from root=; pass no root= to use the packaged copy)":
            "folder 'x' does not exist (from --data; pass no --data to use the packaged copy)",
        # prose and quoted user input stay as they are
        "a device is needed; the margin of 'max_latency_ms' and n samples": 
            "a device is needed; the margin of 'max_latency_ms' and n samples",
        "seed must be an int": "seed must be an int",  # no --seed flag here
    }
    for api, cli in cases.items():
        assert speak_cli(api, flags) == cli


def test_format_seconds():
    from archgen.cli.train import format_seconds

    assert format_seconds(963.2841) == "16 min 3 s"
    assert format_seconds(4.24) == "4.2 s"
    assert format_seconds(42.0) == "42 s"
    assert format_seconds(7380) == "2 h 3 min"


def test_unknown_names_suggest_the_closest(capsys):
    assert main(["show", BEST_C10, "--space", "nb20"]) == 2
    assert "unknown search space 'nb20' (did you mean 'nb201'?); valid: anb, fbnet, mbv3, nb201" \
        in capsys.readouterr().err
