#!/usr/bin/env python3
"""A ccache HTTP remote storage for measurements: GET, HEAD, PUT, DELETE on
files under a directory, on 127.0.0.1 only. docs/benchmarks.md ("ccache")
runs it; a real team would use any HTTP server that answers these methods.

Usage: ccache-http-storage.py DIR PORT
"""

import http.server
import os
import sys


class Storage(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def path_on_disk(self):
        name = self.path.lstrip("/").replace("..", "_")
        return os.path.join(self.server.directory, name)

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        try:
            with open(self.path_on_disk(), "rb") as entry:
                self.answer(200, entry.read())
        except FileNotFoundError:
            self.answer(404)

    do_HEAD = do_GET

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.path_on_disk()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as entry:
            entry.write(body)
        os.replace(path + ".tmp", path)
        self.answer(201)

    def do_DELETE(self):
        try:
            os.remove(self.path_on_disk())
        except FileNotFoundError:
            pass
        self.answer(200)

    def log_message(self, *args):
        pass


def main():
    directory, port = sys.argv[1], int(sys.argv[2])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Storage)
    server.directory = directory
    server.serve_forever()


if __name__ == "__main__":
    main()
