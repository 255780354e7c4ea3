"""Development tools: the local stack, an SMTP sink, a reference ERP, the demo. Not in the production image."""
