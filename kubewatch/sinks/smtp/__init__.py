"""The SMTP sink: one e-mail per event, with a plain-text and an HTML part.

:mod:`.sink` sends (the whole story is in its docstring), :mod:`.message` renders the
body, :mod:`.settings` checks what the sink is built from.
"""

from kubewatch.sinks.smtp.sink import DEFAULT_PORTS, SmtpSink

__all__ = ["DEFAULT_PORTS", "SmtpSink"]
