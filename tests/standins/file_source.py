"""A local file server with Range support: the stand-in for a customer's input URL.

`stall_at` makes the first full (non-Range) read stop after that many bytes until
`release` is set; `/metadata` answers with a redirect into the cloud metadata address.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileSource:
    def __init__(self, data: bytes, stall_at: int | None = None) -> None:
        self.data, self.stall_at = data, stall_at
        self.ranges: list[str | None] = []
        self.release = threading.Event()
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/metadata":
                    self.send_response(302)
                    self.send_header("location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                rng = self.headers.get("range")
                source.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self.send_response(206 if rng else 200)
                self.send_header("content-length", str(len(source.data) - start))
                self.end_headers()
                if rng is None and source.stall_at is not None:
                    self.wfile.write(source.data[: source.stall_at])
                    self.wfile.flush()
                    source.release.wait(60)
                    return
                self.wfile.write(source.data[start:])

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/input.bin") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
