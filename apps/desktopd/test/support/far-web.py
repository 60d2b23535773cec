"""The far side's web server for proxy tests: HTTP on 80 and HTTPS on 443 (the given certificate)
at ADDRESS, and HTTP on 80 at ADDRESS6 when given. GET /hello answers with the Host it was asked for; GET /slow streams 30 lines over
about 3 s, long enough to change the proxy's upstream in the middle."""
import http.server
import socket
import ssl
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("content-length", str(30 * 8))
            self.end_headers()
            for i in range(30):
                self.wfile.write(b"line %02d\n" % i)
                self.wfile.flush()
                time.sleep(0.1)
            return
        body = ("far side: %s %s\n" % (self.headers.get("host"), self.path)).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(server):
    server.serve_forever()


class Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


address, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
if len(sys.argv) > 4:
    threading.Thread(target=serve, args=(Server6((sys.argv[4], 80), Handler),), daemon=True).start()
plain = http.server.ThreadingHTTPServer((address, 80), Handler)
secure = http.server.ThreadingHTTPServer((address, 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
secure.socket = context.wrap_socket(secure.socket, server_side=True)
threading.Thread(target=serve, args=(secure,), daemon=True).start()
print("ready", flush=True)
serve(plain)
