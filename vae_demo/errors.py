"""The one base class for every error a visitor may see.

A `DemoError`'s message is a sentence that says what to change ("The image is 9000 × 9000 pixels; the limit is …").
The app shows it as it is (gr.Error), the API returns it, the CLI prints it; any other exception is a bug, logged on
the server and shown only as "something went wrong". Each concern raises its own subclass (an upload's ImageError,
an argument's InputError, a model's ModelLoadError), which also subclasses the builtin a caller would expect.
"""


class DemoError(Exception):
    """An error whose message is meant for the visitor: a sentence that says what went wrong and what to change."""


USER_ERRORS = (DemoError,)  # what the UI turns into gr.Error: DemoError and nothing else
