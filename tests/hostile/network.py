"""Opens TCP connections to the host and resolves a name on the Internet."""
import ctypes
import socket


def main(marker, port, hosts, **_):
    ctypes.CDLL(None).prctl(15, marker.encode(), 0, 0, 0)
    reached, errors = [], []
    for host in hosts:
        try:
            with socket.create_connection((host, port), timeout=0.5) as connection:
                connection.sendall(marker.encode())
                reached.append(host)
        except OSError as error:
            errors.append(f"{host}:{port}: {error!r}")
    try:
        reached.append(socket.gethostbyname("deb.debian.org"))
    except OSError as error:
        errors.append(f"dns: {error!r}")
    if not reached:
        raise ConnectionError("no network: " + "; ".join(errors))
    return {"reached": reached}
