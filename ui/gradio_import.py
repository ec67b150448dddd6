"""Gradio imported without rewriting its own type stubs: import this module before gradio.

Every `import gradio` makes each of its ~80 component classes, as the class is created, re-read its module's source,
parse it twice with `ast` and compare (or rewrite) the `.pyi` stub beside it in site-packages
(`gradio.component_meta.create_or_modify_pyi`). The stubs only serve an editor's type hints for custom-component
authors; a server never reads them. Here that costs 2.9 of `import gradio`'s 6.5 s, paid on every start before the
first answer (docs/PERFORMANCE.md). Imported first, this module lets `gradio.component_meta` load as usual and then
replaces that one function with a no-op, so the classes, their events and everything else are Gradio's own.

If gradio is already imported (`gradio app.py`, a test session), or a Gradio release renames the function, nothing
changes. The module imports nothing of gradio's itself.
"""

import importlib.machinery
import sys

TARGET = "gradio.component_meta"


def _keep_stubs_as_they_are(component_class, class_name, events) -> None:
    """In place of create_or_modify_pyi: the installed stubs are left as pip wrote them."""


class _StubSkipper:
    """A meta-path finder for TARGET only: Python's own spec, its loader's exec_module followed by the swap."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = _keep_stubs_as_they_are

        spec.loader.exec_module = exec_module
        return spec


def install() -> bool:
    """Put the finder first on sys.meta_path; False when gradio's component_meta is already imported (no effect)."""
    if TARGET in sys.modules:
        return False
    if _StubSkipper not in sys.meta_path:
        sys.meta_path.insert(0, _StubSkipper)
    return True


def skipped() -> bool:
    """Whether the loaded gradio runs without its stub writer."""
    module = sys.modules.get(TARGET)
    return module is not None and getattr(module, "create_or_modify_pyi", None) is _keep_stubs_as_they_are


install()
