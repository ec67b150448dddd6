"""ui.gradio_import and app.py's start-up settings, each in a fresh interpreter (this test session imported gradio
long ago): Gradio comes up without its stub writer and works as before; the first event imports no pyplot."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh(code: str, **env) -> dict:
    """Run `code` in a new interpreter at the repository root; it prints one JSON object, returned here."""
    e = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | {"GRADIO_ANALYTICS_ENABLED": "False"} | env
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=e, capture_output=True, check=False,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_app_imports_gradio_without_its_stub_writer_and_gradio_still_works():
    r = fresh("""
        import json, sys
        import app  # builds the page with every bundled model, as `python app.py` does
        import gradio as gr
        import gradio.component_meta as cm
        import ui.gradio_import as gi
        with gr.Blocks() as demo:  # a component class made now goes through ComponentMeta too
            class Knob(gr.Slider):
                pass
            b, k = gr.Button("go"), Knob(0, 1)
            b.click(lambda x: x, [k], [k])
        print(json.dumps({"skipped": gi.skipped(), "writer": cm.create_or_modify_pyi.__name__,
                          "events": [e.event_name for e in gr.Image.EVENTS][:3], "fns": len(demo.fns),
                          "knob_has_change": callable(getattr(Knob, "change", None)),
                          "page_fns": len(app.demo.fns)}))
    """)
    assert r["skipped"] and r["writer"] == "_keep_stubs_as_they_are"
    assert r["events"] == ["clear", "change", "stream"] and r["fns"] == 1 and r["knob_has_change"]
    assert r["page_fns"] > 50  # the whole page was built on the patched gradio


def test_gradio_imported_first_is_left_as_it_is():
    r = fresh("""
        import json
        import gradio, gradio.component_meta as cm
        import ui.gradio_import as gi
        print(json.dumps({"installed": gi.install(), "skipped": gi.skipped(), "writer": cm.create_or_modify_pyi.__name__}))
    """)
    assert r == {"installed": False, "skipped": False, "writer": "create_or_modify_pyi"}


def test_with_the_skip_gradio_reads_no_component_source():
    """The stock writer reads every component's source; with the skip, component modules' sources are not read."""
    code = """
        import builtins, json, pathlib, sys
        reads = []
        real = pathlib.Path.read_text
        def read_text(self, *a, **k):
            if "gradio" in str(self) and str(self).endswith((".py", ".pyi")):
                reads.append(self.name)
            return real(self, *a, **k)
        pathlib.Path.read_text = read_text
        if SKIP:
            import ui.gradio_import
        import gradio
        print(json.dumps({"reads": len(reads)}))
    """
    stock = fresh("SKIP = False\n" + textwrap.dedent(code))
    skipped = fresh("SKIP = True\n" + textwrap.dedent(code))
    assert stock["reads"] > 50 and skipped["reads"] == 0


def test_the_first_event_imports_no_pyplot_and_a_chart_still_draws():
    r = fresh("""
        import json, sys
        import app
        from gradio.utils import MatplotlibBackendMananger  # what Gradio enters around every event
        m = MatplotlibBackendMananger()
        m.__enter__(); m.__exit__(None, None, None)
        import matplotlib
        before = "matplotlib.pyplot" in sys.modules
        from vae_demo.imaging import charts
        img = charts.posterior_chart([0.0, 1.0], [1.0, 0.5], [0.0, 0.6])
        print(json.dumps({"pyplot_on_event": before, "backend": matplotlib.get_backend(), "chart": list(img.size)}))
    """)
    assert r["pyplot_on_event"] is False and r["backend"].lower() == "agg" and min(r["chart"]) > 50


def test_a_backend_the_user_chose_wins():
    r = fresh("""
        import json, app, matplotlib
        print(json.dumps({"backend": matplotlib.get_backend()}))
    """, MPLBACKEND="pdf")
    assert r["backend"].lower() == "pdf"
