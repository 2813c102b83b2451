"""mitmproxy addons of upsproxy; installed as ``upsproxy.addons``.

Each module is also loadable on its own: ``mitmdump -s addons/replay.py``.
"""
