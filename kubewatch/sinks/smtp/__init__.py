"""The SMTP sink: one e-mail per event, with a plain-text and an HTML part.

:mod:`.sink` builds and addresses each message (why one connection per send: its
docstring), :mod:`.session` talks to the server and classifies its replies,
:mod:`.message` renders the body, :mod:`.settings` checks what the sink is built from.
"""

from kubewatch.sinks.smtp.sink import DEFAULT_PORTS, SmtpSink

__all__ = ["DEFAULT_PORTS", "SmtpSink"]
