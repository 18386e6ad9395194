"""An SMTP receiver for the REQUIRETLS tests (RFC 8689) on OpenSSL
(Python's ssl), because the Postfix of this machine (3.7) does not offer
REQUIRETLS: the next hop a flagged message may be delivered to, and the
ones it must not be.

    requiretls_receiver.py IP PORT CERT KEY STARTTLS OFFER

Listens on IP:PORT (PORT 0 picks one) and prints `READY <port>`.
STARTTLS `yes` offers STARTTLS with CERT (chain, leaf first) and KEY;
`no` never offers it. OFFER says when the EHLO reply lists REQUIRETLS:
`tls` (after STARTTLS only, as RFC 8689 §4.1 has it), `never`, or
`always` (in plaintext too: a lying server, to show the client does
not trust the word without the TLS).

Everything is recorded as one JSON object a line on stdout, `c` being
the connection's number in accept order:

    {"e": "connect", "c": 0}
    {"e": "line", "c": 0, "tls": false, "text": "EHLO relay.example.test"}
    {"e": "tls", "c": 0, "version": "TLSv1.3", "cipher": "...", "sni": "..."}
    {"e": "tls-failed", "c": 0, "error": "..."}
    {"e": "message", "c": 0, "tls": true, "mail": "MAIL FROM:<a@b> REQUIRETLS",
     "rcpt": ["RCPT TO:<c@d>"], "data": "..."}
    {"e": "close", "c": 0}

`line` is every command line as it came (DATA content is in `message`,
dot-unstuffed). MAIL with REQUIRETLS when the EHLO reply did not offer
it is refused with 555, as Postfix refuses an unknown parameter.
"""

import json
import socket
import ssl
import sys
import threading

IP, PORT, CERT, KEY, STARTTLS, OFFER = sys.argv[1:7]
PORT = int(PORT)
STARTTLS = STARTTLS == "yes"
NAME = "requiretls.receiver.test"
OUT = threading.Lock()
SNI = threading.local()


def emit(**event):
    with OUT:
        print(json.dumps(event), flush=True)


def remember_sni(_sock, name, _context):
    SNI.name = name


CONTEXT = None
if STARTTLS:
    CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    CONTEXT.load_cert_chain(CERT, KEY)
    CONTEXT.sni_callback = remember_sni


class Session:
    """One connection: reads lines from a plain or TLS socket alike."""

    def __init__(self, sock, number):
        self.sock = sock
        self.c = number
        self.buffer = b""
        self.tls = False
        self.reset()

    def reset(self):
        self.greeted = False
        self.mail = None
        self.rcpt = []

    def say(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def line(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def offers(self):
        return OFFER == "always" or (OFFER == "tls" and self.tls)

    def ehlo(self, text):
        self.reset()
        self.greeted = True
        lines = [NAME, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 10485760"]
        if STARTTLS and not self.tls:
            lines.append("STARTTLS")
        if self.offers():
            lines.append("REQUIRETLS")
        reply = "\r\n".join("250-" + l for l in lines[:-1]) + "\r\n250 " + lines[-1]
        self.say(reply)

    def starttls(self):
        if not STARTTLS or self.tls:
            self.say("502 5.5.1 STARTTLS not offered")
            return True
        self.say("220 2.0.0 Ready to start TLS")
        if self.buffer:
            # RFC 3207 §4: nothing may follow STARTTLS before the handshake.
            emit(e="tls-failed", c=self.c, error="plaintext after STARTTLS")
            return False
        SNI.name = None
        try:
            self.sock = CONTEXT.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            emit(e="tls-failed", c=self.c, error=str(e))
            return False
        self.tls = True
        emit(e="tls", c=self.c, version=self.sock.version(),
             cipher=self.sock.cipher()[0], sni=SNI.name)
        self.reset()
        return True

    def data(self):
        if self.mail is None or not self.rcpt:
            self.say("554 5.5.1 no valid recipients")
            return True
        self.say("354 End data with <CR><LF>.<CR><LF>")
        content = []
        while True:
            line = self.line()
            if line is None:
                return False
            if line == ".":
                break
            content.append(line[1:] if line.startswith(".") else line)
        emit(e="message", c=self.c, tls=self.tls, mail=self.mail, rcpt=self.rcpt,
             data="".join(l + "\r\n" for l in content))
        self.say("250 2.0.0 Ok: queued")
        self.mail, self.rcpt = None, []
        return True

    def run(self):
        self.say("220 " + NAME + " ESMTP requiretls receiver")
        while True:
            text = self.line()
            if text is None:
                return
            emit(e="line", c=self.c, tls=self.tls, text=text)
            verb = text.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.ehlo(text)
            elif verb == "STARTTLS":
                if not self.starttls():
                    return
            elif text.upper().startswith("MAIL FROM:"):
                params = text.split(">", 1)[-1].upper().split()
                if not self.greeted:
                    self.say("503 5.5.1 EHLO first")
                elif "REQUIRETLS" in params and not self.offers():
                    self.say("555 5.5.4 Unsupported option: REQUIRETLS")
                else:
                    self.mail, self.rcpt = text, []
                    self.say("250 2.1.0 Ok")
            elif text.upper().startswith("RCPT TO:"):
                if self.mail is None:
                    self.say("503 5.5.1 MAIL first")
                else:
                    self.rcpt.append(text)
                    self.say("250 2.1.5 Ok")
            elif verb == "DATA":
                if not self.data():
                    return
            elif verb == "RSET":
                self.mail, self.rcpt = None, []
                self.say("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.say("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.say("221 2.0.0 Bye")
                return
            else:
                self.say("502 5.5.2 Error: command not recognized")


def serve(sock, number):
    sock.settimeout(30)
    session = Session(sock, number)
    try:
        session.run()
    except (OSError, ssl.SSLError):
        pass
    finally:
        emit(e="close", c=number)
        try:
            session.sock.close()
        except OSError:
            pass


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((IP, PORT))
listener.listen(64)
print("READY", listener.getsockname()[1], flush=True)
count = 0
while True:
    conn, _ = listener.accept()
    emit(e="connect", c=count)
    threading.Thread(target=serve, args=(conn, count), daemon=True).start()
    count += 1
