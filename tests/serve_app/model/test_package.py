"""The model package loads torch and diffusers only when a name that needs them is used."""

import sys

import serve_app.model as model_package
from tests.fresh_interpreter import run_fresh


def test_every_exported_name_resolves_from_its_module():
    assert sorted(model_package.__all__) == sorted(model_package._EXPORTS)
    for name, module in model_package._EXPORTS.items():
        assert getattr(model_package, name) is getattr(sys.modules[f"serve_app.model.{module}"], name)


def test_the_ingress_side_counts_tokens_without_torch(tiny_model_dir):
    # A fresh interpreter: this one has long imported torch.
    code = (
        "import sys\n"
        "import serve_app.app, serve_app.ingress, serve_app.model_replica\n"
        "from serve_app.model import PromptTokenCounter, ResolvedModel\n"
        f"counter = PromptTokenCounter({str(tiny_model_dir)!r})\n"
        "assert counter.count('a lighthouse at sunset') > 0 and counter.max_prompt_tokens == 75\n"
        "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))\n"
    )
    assert run_fresh(code, timeout=120) == "[]"


def test_the_model_package_depends_on_no_service_module_but_the_plain_data_types():
    # Settings and the device loop reach the model as plain values (serve_app/model_replica.py).
    import ast
    from pathlib import Path

    package = Path(model_package.__file__).parent
    outside = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            outside |= {n for n in names if n.startswith("serve_app") and not n.startswith("serve_app.model")}
    assert outside == {"serve_app.batching"}
