"""The strict layer's liveness probe: later commands (``status``, ``retract``, ``sweep``) ask whether a
home's chain still runs with ``GET /readyz``, which needs no token and leaves no refusal in the audit
log; every other request without a token is still 401 and audited."""

from __future__ import annotations

import json

import requests


def test_the_liveness_probe_needs_no_token_and_is_not_audited(tmp_path):
    from retail_pipeline.identity import token_for
    from retail_pipeline.strict.httpserve import HEALTH_PATH, AuditLog, LocalServer, Reply

    handled = []

    def handler(req):
        handled.append((req.account, req.method, req.path))
        return Reply(200, [("Content-Type", "text/plain")], b"handled")

    audit = AuditLog(tmp_path / "audit.jsonl", "test")
    server = LocalServer("health", handler, audit)
    url = server.start()
    try:
        probe = requests.get(url + HEALTH_PATH, timeout=10)
        assert probe.status_code == 200 and handled == []
        assert not (tmp_path / "audit.jsonl").exists() or (tmp_path / "audit.jsonl").read_text() == ""

        anonymous = requests.get(url + "/storage/v1/b", timeout=10)
        assert anonymous.status_code == 401 and handled == []
        [line] = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert (line["account"], line["path"], line["allowed"]) == (None, "/storage/v1/b", False)

        email = "retail-fn-load@retail-local.iam.gserviceaccount.com"
        signed = requests.post(url + HEALTH_PATH, headers={"Authorization": f"Bearer {token_for(email)}"}, timeout=10)
        assert signed.status_code == 200 and handled == [(email, "POST", HEALTH_PATH)]  # only GET is the probe
    finally:
        server.stop()
