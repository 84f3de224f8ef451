"""Helpers shared by the synth tests (a module of its own: `conftest` names clash across folders)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prefalign.generation.types import Completion


class CannedGenerator:
    """A Generator with responses chosen per (prompt, sample): ``table[prompt index][j]``, so
    every count a test checks is known."""

    name = "canned"

    def __init__(self, table):
        self.table, self.calls = table, 0

    def describe(self):
        return {"backend": self.name}

    def generate(self, prompts, n, sampling, seed=0):
        self.calls += 1
        return [[Completion(self.table[p.index][j], seed=j) for j in range(n)] for p in prompts]


class ScriptedJudge:
    """A Generator whose answer is a function of the question (its user turn): judges,
    revisers; every question is kept in ``questions``."""

    name = "scripted"

    def __init__(self, answer):
        self.answer, self.questions = answer, []

    def describe(self):
        return {"backend": self.name}

    def generate(self, prompts, n, sampling, seed=0):
        out = []
        for p in prompts:
            q = p.prompt[-1]["content"]
            self.questions.append(q)
            out.append([Completion(self.answer(q), seed)])
        return out


def arithmetic_rows(count, chat=True):
    rows = []
    for i in range(count):
        a, b = i + 1, 2 * i + 3
        q = f"What is {a}+{b}?"
        rows.append({"prompt": [{"role": "user", "content": q}] if chat else q, "answer": a + b})
    return rows


class Server:
    """A real OpenAI-compatible server on 127.0.0.1 with canned answers; request 1 gets a 503."""

    def __init__(self, fail_first=1, status=503):
        self.calls, self.bodies, self.lock = 0, [], threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls += 1
                    call = server.calls
                    server.bodies.append((self.path, body))
                if call <= fail_first:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                text = f"echo {body['messages'][-1]['content']} seed={body['seed']}"
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text},
                                                   "finish_reason": "stop"}],
                                      "usage": {"completion_tokens": 3}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def digit_share(response, example):
    """A graded toy verifier: the share of digits in the response (random text rarely ties)."""
    return sum(ch.isdigit() for ch in response) / max(len(response), 1)


class ScriptedServer:
    """A server on 127.0.0.1 whose every answer is ``respond(method, path, headers, body) ->
    (status, headers dict, body bytes)``; ``requests`` records (method, path, headers)."""

    def __init__(self, respond):
        self.requests, self.lock = [], threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, payload = respond(self.command, self.path, self.headers, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.origin + "/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_answer(text="hello"):
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}]}).encode()
