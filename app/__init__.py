"""callbill: invoices for billable Genesys Cloud CX interactions.

`faust -A app worker` finds the Faust app here; it is built on first use so that the
CLI's other commands (dev stack, topics, demo) start without it.
"""


def __getattr__(name: str):
    if name == "app":
        from app.main import app

        return app
    raise AttributeError(name)
