"""Loopback upstreams for the egress tests: HTTP servers on 127.0.0.1 that count connections,
echo request headers as JSON, stream slowly, and serve a one-package index for pip."""
import base64
import hashlib
import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tiny_wheel():
    """A real, installable wheel of `tinypkg` 1.0 (VALUE = 42)."""
    files = {
        "tinypkg/__init__.py": b"VALUE = 42\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: sandboxer-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(data)}\n"
    record += "tinypkg-1.0.dist-info/RECORD,,\n"
    files["tinypkg-1.0.dist-info/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


class Upstream:
    """A counting HTTP server on 127.0.0.1:<free port>."""

    def __init__(self):
        self.connections = 0
        self.requests = []
        self.wheel = tiny_wheel()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                upstream.requests.append((self.path, dict(self.headers)))
                if self.path.startswith("/slow"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "600")
                    self.end_headers()
                    for _ in range(600):
                        try:
                            self.wfile.write(b".")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.1)
                elif self.path.rstrip("/") == "/simple/tinypkg":
                    self.reply(200, b'<html><body><a href="/files/tinypkg-1.0-py3-none-any.whl">tinypkg-1.0-py3-none-any.whl</a></body></html>', "text/html")
                elif self.path == "/files/tinypkg-1.0-py3-none-any.whl":
                    self.reply(200, upstream.wheel, "application/octet-stream")
                elif self.path.startswith("/simple"):
                    self.reply(404, b"not here", "text/plain")
                else:
                    self.reply(200, json.dumps({"path": self.path, "headers": dict(self.headers)}).encode())

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                upstream.connections += 1
                super().process_request(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
