"""The DemoService's handlers for the models themselves: which ones the current visitor may use, loading and
unloading their run-time models, and the picker's choices (vae_demo/serving/registry.py keeps them and their caps).
Kept apart from service.py so each file stays about one thing; DemoService inherits them."""

from vae_demo.serving.registry import current_owner

RELOAD = "reload:"  # a picker value that loads a visitor's evicted model again


class ModelEndpoints:
    def models(self) -> list:
        return self.registry.describe()

    def model_names(self) -> list:
        return self.registry.names()

    def load_model(self, source: str) -> str:
        """A bundled name or Hub repo id typed by a visitor -> the loaded model's name (no local paths). A run-time
        model joins the current visitor's picker only, within the caps (vae_demo/serving/registry.py)."""
        return self.registry.load_for(source, current_owner()).info.name

    def unload_model(self, name: str) -> bool:
        """The current visitor lets go of one of their run-time models -> whether they held it"""
        return self.registry.unload_for(str(name or ""), current_owner())

    def picker_choices(self) -> list:
        """[(label, value)] for the model picker: every model the current visitor may use, then theirs that were
        evicted, each with a value that loads it again when picked (RELOAD + its source)"""
        return [(n, n) for n in self.model_names()] + [
            (f"{name} — unloaded, pick to load again", RELOAD + source) for name, source in self.registry.evicted().items()]
