"""The Faust application of a worker: `faust -A app.main worker` and `callbill worker` load it.

The only module that builds an app at import, and only because Faust's command line needs
a module attribute; everything else calls `app.factory.create_app(settings)`.
"""
from __future__ import annotations

from app.factory import create_app
from app.preflight import settings_or_exit

settings = settings_or_exit()  # the same pre-flight as `callbill worker`: exit 2 with one line
app = create_app(settings)
