"""The Gradio page, one module per tab. Each tab's `build(service, model)` lays out its components, wires its own
events to `vae_demo.service.DemoService` and returns a `Tab`: the components to refresh when the page opens or the
model changes, and the function that gives their values. app.py puts the tabs together and launches the page."""
