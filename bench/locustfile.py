"""Locust users for the search service: ``scripts/reliability.py load`` runs it headless (50 users, 60 s).

    locust -f bench/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8000

Each user is one client of the service: mostly searches (POST and GET, dense and hybrid, varied
top_k), some embeddings, a health probe. A request counts as failed unless it returns 200 with the
expected body, so "zero failed requests" means every answer was complete. Queries come from the file
named by LOCUST_QUERIES (BEIR queries.jsonl or one query a line), else a few built-in ones.
"""

from __future__ import annotations

import json
import os
import random

from locust import HttpUser, between, task

_FALLBACK = ["what are the symptoms of glaucoma", "how to treat high blood pressure", "what causes asthma",
             "is diabetes inherited", "treatment for migraine", "side effects of aspirin"]


def _queries() -> list[str]:
    path = os.environ.get("LOCUST_QUERIES")
    if not path:
        return _FALLBACK
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["text"] if path.endswith(".jsonl") else line.strip())
            if len(out) >= 5000:
                break
    return out or _FALLBACK


QUERIES = _queries()


class SearchUser(HttpUser):
    # Think time between a user's requests: 50 users then ask ~300 requests/s at most, a busy service
    # rather than a flood (the benchmark measures saturation with wrk).
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        self.rng = random.Random()

    def _check(self, r, key: str) -> None:  # type: ignore[no-untyped-def]
        if r.status_code != 200:
            r.failure(f"status {r.status_code}: {r.text[:200]}")
            return
        try:
            body = r.json()
        except ValueError:
            r.failure("not JSON")
            return
        if key not in body:
            r.failure(f"no {key!r} in the answer")
        else:
            r.success()

    @task(6)
    def search_post(self) -> None:
        body = {"query": self.rng.choice(QUERIES), "top_k": self.rng.choice([5, 10, 20]),
                "mode": "hybrid" if self.rng.random() < 0.25 else "dense"}
        with self.client.post("/search", json=body, name="POST /search", catch_response=True) as r:
            self._check(r, "results")

    @task(2)
    def search_get(self) -> None:
        params = {"q": self.rng.choice(QUERIES), "top_k": 10}
        with self.client.get("/search", params=params, name="GET /search", catch_response=True) as r:
            self._check(r, "results")

    @task(1)
    def embed(self) -> None:
        texts = self.rng.sample(QUERIES, k=min(4, len(QUERIES)))
        with self.client.post("/embed", json={"input": texts}, name="POST /embed", catch_response=True) as r:
            self._check(r, "data")

    @task(1)
    def health(self) -> None:
        with self.client.get("/health", name="GET /health", catch_response=True) as r:
            self._check(r, "status")
