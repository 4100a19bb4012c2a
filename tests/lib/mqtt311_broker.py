"""A broker that speaks MQTT 3.1.1 only, for the test of perfused's fallback.

  mqtt311_broker.py PORT LOG

Refuses a CONNECT of any other protocol level the way a 3.1.1 broker does
(CONNACK return code 1, unacceptable protocol version), accepts 3.1.1, answers
SUBSCRIBE, PUBLISH (QoS 1) and PINGREQ, and writes one line per event to LOG:
"listening", "refused level N", "connected level 4", "publish TOPIC PAYLOAD".
Serves one connection at a time until killed.
"""
import socket
import sys


def read_exact(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b


def read_packet(c):
    head = read_exact(c, 1)[0]
    mult, length = 1, 0
    while True:
        d = read_exact(c, 1)[0]
        length += (d & 127) * mult
        mult *= 128
        if not d & 128:
            break
    return head, read_exact(c, length)


def serve(c, log):
    head, body = read_packet(c)
    if head >> 4 != 1:
        return
    name_len = int.from_bytes(body[0:2], "big")
    level = body[2 + name_len]
    if level != 4:
        log(f"refused level {level}")
        c.sendall(bytes([0x20, 2, 0, 1]))
        return
    log("connected level 4")
    c.sendall(bytes([0x20, 2, 0, 0]))
    while True:
        head, body = read_packet(c)
        kind = head >> 4
        if kind == 3:       # PUBLISH
            tlen = int.from_bytes(body[0:2], "big")
            topic = body[2:2 + tlen].decode()
            qos = (head >> 1) & 3
            rest = body[2 + tlen:]
            if qos:
                mid, rest = rest[:2], rest[2:]
                c.sendall(bytes([0x40, 2]) + mid)
            log(f"publish {topic} {rest.decode(errors='replace')}")
        elif kind == 8:     # SUBSCRIBE
            mid = body[:2]
            c.sendall(bytes([0x90, 3]) + mid + bytes([1]))
        elif kind == 12:    # PINGREQ
            c.sendall(bytes([0xD0, 0]))
        elif kind == 14:    # DISCONNECT
            return


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    out = open(path, "a", buffering=1)

    def log(s):
        out.write(s + "\n")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4)
    log("listening")
    while True:
        c, _ = s.accept()
        try:
            serve(c, log)
        except (EOFError, ConnectionError):
            pass
        c.close()


if __name__ == "__main__":
    main()
