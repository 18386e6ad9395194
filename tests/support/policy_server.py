"""An MTA-STS policy server for the real-peer tests: HTTPS on OpenSSL
(Python's ssl and http.server), so the relay's rustls client meets
another TLS stack, as it will on the Internet.

    policy_server.py ROOT CERT KEY [BAD_CERT BAD_KEY BAD_NAME...]

Listens on 127.0.0.1, port 0, and prints `READY <port>`. Each request
prints `REQUEST <host> <path>` (host without port, lowercase) before it
is answered, so the test counts what was asked. What a host gets is
scripted by the file ROOT/<host>.json, read at each request:

    {"status": 200, "content_type": "text/plain", "body": "...",
     "pad": 0, "location": "https://..."}

`pad` appends that many bytes of `ext: xxx…` lines to the body;
`location` is sent as a Location header (for redirects). No file: 404.
A client whose SNI is one of BAD_NAME gets BAD_CERT (a certificate that
does not name it) instead of CERT.
"""

import http.server
import json
import os
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        print("REQUEST", host, self.path, flush=True)
        script = os.path.join(ROOT, host + ".json")
        try:
            with open(script, encoding="utf-8") as f:
                answer = json.load(f)
        except OSError:
            answer = {"status": 404, "content_type": "text/plain", "body": "not found\n"}
        body = answer.get("body", "").encode()
        pad = answer.get("pad", 0)
        while pad > 0:
            line = b"ext: " + b"x" * 70 + b"\r\n"
            body += line
            pad -= len(line)
        self.send_response(answer.get("status", 200))
        self.send_header("Content-Type", answer.get("content_type", "text/plain"))
        self.send_header("Content-Length", str(len(body)))
        if "location" in answer:
            self.send_header("Location", answer["location"])
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ROOT, CERT, KEY = sys.argv[1:4]
good = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
good.load_cert_chain(CERT, KEY)
if len(sys.argv) > 4:
    bad = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bad.load_cert_chain(sys.argv[4], sys.argv[5])
    bad_names = {n.lower() for n in sys.argv[6:]}

    def pick(sock, name, _context):
        if name and name.lower() in bad_names:
            sock.context = bad

    good.sni_callback = pick
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
server.socket = good.wrap_socket(server.socket, server_side=True)
print("READY", server.server_address[1], flush=True)
server.serve_forever()
