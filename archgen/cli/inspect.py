"""``archgen spaces``, ``archgen show`` and ``archgen export``: look at architectures."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .options import add_build, add_command, add_space, input_shape, num_classes

_ROLE = re.compile(r":[\w:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :class:`~a.B` -> a.B (last part below)


def plain_text(doc: str) -> str:
    """A docstring line as plain text: reStructuredText roles and literals (``:class:`~x.Y```,
    ````code````, ```x```) become their text, so a terminal shows no markup."""
    def role(m: re.Match) -> str:
        target = m.group(1).strip()
        return target.rsplit(".", 1)[-1] if m.group(0).split("`", 1)[1].startswith("~") else target

    text = _ROLE.sub(role, doc)
    text = re.sub(r"``(.+?)``", r"\1", text)
    return re.sub(r"`([^`]+)`", r"\1", text)


def add_parsers(sub) -> None:
    add_command(sub, "spaces", "list the search spaces", cmd_spaces)

    p = add_command(sub, "show", "print an architecture's graph, parameters and FLOPs, "
                    "or the atomic graph of an .onnx model", cmd_show)
    p.add_argument("arch", help="architecture string of the space, or the path of an .onnx model")
    add_space(p)
    add_build(p)
    p.add_argument("--nodes", type=int, default=12, metavar="N",
                   help="with an .onnx model: print its first N nodes (0 for none, -1 for all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = add_command(sub, "export", "build an architecture and export it to ONNX", cmd_export)
    p.add_argument("arch", help="architecture string of the space")
    p.add_argument("out", help="output .onnx path")
    add_space(p)
    add_build(p)


def cmd_spaces(args) -> int:
    from ..spaces import available_spaces, get_space

    rows = []
    for name in available_spaces():
        space = get_space(name)
        size = f"{space.size:,} architectures" if space.size else "not enumerable"
        rows.append((name, size, plain_text((type(space).__doc__ or "").strip().splitlines()[0])))
    widths = [max(len(r[k]) for r in rows) for k in range(2)]
    for name, size, doc in rows:
        print(f"{name:<{widths[0]}}  {size:<{widths[1]}}  {doc}")
    return 0


def _show_onnx(args) -> int:
    """``archgen show model.onnx``: the model's atomic computation graph."""
    from ..atomic import from_onnx, op_counts, summary_table

    graph = from_onnx(args.arch)
    if args.json:
        print(json.dumps({"model": args.arch, "nodes": graph.num_nodes, "edges": graph.nx.number_of_edges(),
                          "op_counts": op_counts(graph), "graph": graph.to_dict()}, indent=2))
        return 0
    print(f"model          {args.arch}")
    print(summary_table(graph, nodes=graph.num_nodes if args.nodes < 0 else args.nodes))
    return 0


def cmd_show(args) -> int:
    from ..hardware import count_flops, count_parameters
    from ..spaces import get_space

    if args.arch.lower().endswith(".onnx"):
        return _show_onnx(args)

    space = get_space(args.space)
    arch = space.parse(args.arch)
    graph = space.to_graph(arch)
    classes = num_classes(space, args.num_classes)
    module = space.to_module(arch, num_classes=classes)
    shape = input_shape(space, arch, args.batch_size)
    info = {
        "space": space.name,
        "arch": arch,
        "canonical_hash": graph.canonical_hash(),
        "equivalence_key": space.equivalence_key(arch),
        "parameters": count_parameters(module),
        "flops": count_flops(module, shape),
        "input_shape": list(shape),
        "num_classes": classes,
        "graph": graph.to_dict(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"space          {info['space']}")
    print(f"arch           {arch}")
    print(f"canonical hash {info['canonical_hash']}")
    print(f"function       {info['equivalence_key']}")
    print(f"parameters     {info['parameters']:,} ({info['parameters'] / 1e6:.3f} M) with {classes} classes")
    print(f"FLOPs          {info['flops']:,} ({info['flops'] / 2e6:.2f} M multiply-adds) at input {tuple(shape)}")
    print("graph (node op <- inputs):")
    print(graph.summary())
    return 0


def cmd_export(args) -> int:
    from ..hardware import to_onnx
    from ..spaces import get_space

    space = get_space(args.space)
    arch = space.parse(args.arch)
    classes = num_classes(space, args.num_classes)
    module = space.to_module(arch, num_classes=classes)
    shape = input_shape(space, arch, args.batch_size)
    out = Path(args.out)
    if out.is_dir():  # a folder: the file goes inside it, named by what it computes
        out = out / f"{space.name}-{space.to_graph(arch).canonical_hash()[:10]}.onnx"
    path = to_onnx(module, out, shape)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): input {tuple(shape)}, {classes} classes")
    return 0
