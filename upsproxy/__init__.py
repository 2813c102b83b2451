"""upsproxy: an offline, stateful sandbox for UPS's OAuth Authorization Code API.

The package is a pure core (no mitmproxy import) plus one adapter module,
``upsproxy.mitm``, that connects the core to mitmproxy. The addons that
``mitmdump -s`` loads live in ``addons/`` and are installed as
``upsproxy.addons``.
"""

__version__ = "0.1.0"
