"""Cassette load benchmark: 10,000 interactions, time and memory, beside bare YAML.

Why: DESIGN §7 asks that a 10,000-interaction cassette loads in at most 0.5 s
and adds at most 30 MB RSS. Absolute times swing with the machine, so the
same file is also parsed by bare ``yaml.load`` with libyaml's ``CSafeLoader``
(the floor no loader can beat) in the same run, and the ratio is reported.

upsproxy keeps a big cassette's parsed data in a compiled cache (JSON, by the
SHA-256 of the text; ``upsproxy/cassette_cache.py``), so it is measured twice:
cold (cache off: YAML is parsed, as on a cassette's first load) and warm (the
cache holds it: every later ``upsproxy replay`` or test session). The target
is about the warm load; the cold one is reported beside bare YAML.

Each measurement runs in a fresh interpreter, so imports and earlier loads
never count: the child reads its RSS (``/proc/self/statm``) after importing,
then after loading, and reports the difference and the wall time of the load.
What "load" means for upsproxy: ``load_cassette`` (parse, validate, line-aware
errors) plus building the replay ``Sandbox`` from it (profile, API index, its
JWT key read from the confdir), i.e. everything ``upsproxy replay BIG.yaml``
does before it can answer.

    python scripts/bench_cassette.py [--interactions 10000] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TIME_TARGET_S = 0.5
RSS_TARGET_MB = 30.0

_CHILD = r"""
import json, os, sys, time
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
import yaml
which, path, keydir = sys.argv[1], sys.argv[2], sys.argv[3]
if which != "yaml":
    from pathlib import Path
    from upsproxy.cassette import load_cassette
    from upsproxy.sandbox import Sandbox
text = open(path, encoding="utf-8").read()
before, start = rss(), time.perf_counter()
if which != "yaml":
    sandbox = Sandbox(load_cassette(path), keydir=Path(keydir))
    count = len(sandbox.cassette.interactions)
else:
    data = yaml.load(text, Loader=yaml.CSafeLoader)
    count = len(data["interactions"])
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "rss_bytes": rss() - before, "count": count}))
"""


def _token_json(i: int) -> str:
    """The 10-key CIE token answer as a YAML flow mapping (placeholders numbered by ``i``)."""
    fields = {"refresh_token_expires_in": '"5183999"', "refresh_token_status": "approved",
              "token_type": "Bearer", "issued_at": '"1717000000000"',
              "client_id": "<<client_id:1>>", "access_token": f"<<access_token:{i + 1}>>",
              "refresh_token": f"<<refresh_token:{i + 1}>>",
              "refresh_token_issued_at": '"1717000000000"', "expires_in": '"14399"',
              "status": "approved"}
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def synthesize(path: Path, n: int) -> None:
    """A cassette of ``n`` interactions shaped like the bundled one: mostly
    Tracking calls with nested JSON, plus token and refresh exchanges."""
    head = (Path(__file__).resolve().parent.parent / "cassettes" / "ups-cie.yaml").read_text()
    head = head[: head.index("interactions:")]
    blocks = []
    for i in range(n):
        if i % 10 == 0:
            blocks.append(f"""  - kind: token
    request:
      method: POST
      url: https://wwwcie.ups.com/security/v1/oauth/token
      headers: {{Authorization: <<basic:1>>, Content-Type: application/x-www-form-urlencoded}}
      body: {{form: {{grant_type: authorization_code, code: <<code:{i + 1}>>,
                     redirect_uri: https://app.example.test/cb}}}}
    response:
      status: 200
      headers: {{Content-Type: application/json}}
      body:
        json: {_token_json(i)}
""")
            continue
        number = f"1Z023E2X{i:010d}"
        blocks.append(f"""  - kind: api
    request:
      method: GET
      url: https://wwwcie.ups.com/api/track/v1/details/{number}?locale=en_US&returnSignature=false
      headers: {{Authorization: Bearer <<access_token:1>>, transId: bench-{i},
                transactionSrc: testing}}
    response:
      status: 200
      headers: {{Content-Type: application/json}}
      body:
        json:
          trackResponse:
            shipment:
              - inquiryNumber: {number}
                package:
                  - trackingNumber: {number}
                    deliveryDate: [{{type: DEL, date: "20240601"}}]
                    activity:
                      - location:
                          address: {{city: WAYNE, stateProvince: NJ, countryCode: US,
                                    postalCode: "07470"}}
                        status: {{type: D, description: DELIVERED, code: FS, statusCode: "011"}}
                        date: "20240601"
                        time: "143000"
                    deliveryInformation: {{location: Front Door,
                                          receivedBy: "<<personal:{i + 1}>>"}}
""")
    path.write_text(head + "interactions:\n" + "".join(blocks), encoding="utf-8")


def measure(which: str, path: Path, cache: Path, keydir: Path) -> dict[str, float]:
    env = dict(os.environ, UPSPROXY_CACHE_DIR="off" if which == "cold" else str(cache))
    out = subprocess.run([sys.executable, "-c", _CHILD, which, str(path), str(keydir)],
                         check=True,
                         capture_output=True, text=True, env=env)
    return dict(json.loads(out.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        synthesize(path, args.interactions)
        size_mb = path.stat().st_size / 1e6
        cache = Path(tmp) / "cache"
        # The first load fills the cache and makes the JWT key in keydir, as the first
        # `upsproxy replay` does in its confdir; later loads read both.
        keydir = Path(tmp) / "conf"
        measure("warm", path, cache, keydir)
        runs: dict[str, list[dict[str, float]]] = {"yaml": [], "cold": [], "warm": []}
        for _ in range(args.rounds):  # interleaved, so drift hits all alike
            for which in runs:
                runs[which].append(measure(which, path, cache, keydir))
    for which, results in runs.items():  # every loader really read every interaction
        counts = {int(r["count"]) for r in results}
        assert counts == {args.interactions}, f"{which} loaded {counts} interactions"
    med = {w: (statistics.median(r["seconds"] for r in rs),
               statistics.median(r["rss_bytes"] for r in rs) / 1e6) for w, rs in runs.items()}
    y_s = med["yaml"][0]
    print(f"cassette: {args.interactions} interactions, {size_mb:.1f} MB of YAML; "
          f"medians of {args.rounds} rounds, each in a fresh interpreter")
    print(f"{'loader':<44} {'seconds':>8} {'RSS MB':>8} {'time/yaml':>10}")
    labels = {"yaml": "bare yaml.load (CSafeLoader)",
              "cold": "upsproxy, first load (parses the YAML)",
              "warm": "upsproxy, later loads (compiled cache)"}
    for which, label in labels.items():
        sec, mb = med[which]
        print(f"{label:<44} {sec:>8.3f} {mb:>8.1f} {sec / y_s:>9.2f}x")
    up_s, up_mb = med["warm"]
    ok_t, ok_m = up_s <= TIME_TARGET_S, up_mb <= RSS_TARGET_MB
    print(f"target load <= {TIME_TARGET_S} s (later loads): {'PASS' if ok_t else 'MISS'} "
          f"({up_s:.3f} s)")
    print(f"target RSS  <= {RSS_TARGET_MB:.0f} MB (later loads): {'PASS' if ok_m else 'MISS'} "
          f"({up_mb:.1f} MB)")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "size_mb": size_mb}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
