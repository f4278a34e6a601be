#!/usr/bin/python3
"""bench/http_client.py: the scraper workload of issue 16. 1,000 GETs of a 2 KB body
from a local keep-alive nginx, 100 at a time, through one session/client, over plain HTTP
and over TLS (a certificate made here). Peers: lasync (async.http), aiohttp on asyncio
and on uvloop, Node's fetch, and curl --parallel --parallel-max 100 (libcurl without
Lua: the C limit). Reports medians and ranges of wall time and of the client's CPU time
(user+sys, from wait4) per request, over BENCH_REPS runs (default 5) in rotating order.

usage: bench/http_client.py        (LASYNC=build/lasync by default)
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

BENCH = os.path.dirname(os.path.abspath(__file__))
LASYNC = os.path.abspath(os.environ.get("LASYNC") or os.path.join(BENCH, "..", "build", "lasync"))
PY = "/usr/bin/python3"
REPS = int(os.environ.get("BENCH_REPS", "5"))
N, CONC = 1000, 100

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def start_nginx(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", d + "/k.pem", "-out", d + "/c.pem", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    os.makedirs(d + "/www")
    with open(d + "/www/page.html", "w") as f:
        f.write("x" * 2048)
    plain, tls = free_port(), free_port()
    with open(d + "/nginx.conf", "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{plain}; root {d}/www; }}
  server {{ listen 127.0.0.1:{tls} ssl http2; root {d}/www;
           ssl_certificate {d}/c.pem; ssl_certificate_key {d}/k.pem; }} }}
""")
    p = subprocess.Popen(["nginx", "-c", d + "/nginx.conf", "-e", d + "/error.log"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", plain)).close()
            socket.create_connection(("127.0.0.1", tls)).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, f"http://127.0.0.1:{plain}/page.html", f"https://127.0.0.1:{tls}/page.html"

def commands(url, ca, d):
    cfg = d + "/curl.cfg"
    with open(cfg, "w") as f:
        for _ in range(N):
            f.write(f'url = "{url}"\noutput = "/dev/null"\n')
    cafile = [ca] if ca else []
    env_node = dict(os.environ, **({"NODE_EXTRA_CA_CERTS": ca} if ca else {}))
    return {
        "lasync": ([LASYNC, BENCH + "/lasync/http_client.lua", url, str(N), str(CONC)] + cafile, None),
        "aiohttp+uvloop": ([PY, BENCH + "/python/bench_http_client.py", "uvloop", url, str(N), str(CONC)] + cafile, None),
        "aiohttp": ([PY, BENCH + "/python/bench_http_client.py", "asyncio", url, str(N), str(CONC)] + cafile, None),
        "node fetch": (["node", BENCH + "/node/http_client.js", url, str(N), str(CONC)], env_node),
        "curl --parallel": (["curl", "-s", "--parallel", "--parallel-max", str(CONC), "-K", cfg]
                            + (["--cacert", ca] if ca else []), None),
    }

def run_one(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    out = p.stdout.read().decode()
    err = p.stderr.read().decode()
    if status != 0 or ("curl" not in cmd[0] and not out.startswith("ok")):
        raise RuntimeError(f"{cmd[0]} failed: {out} {err}")
    return wall, ru.ru_utime + ru.ru_stime

def main():
    d = tempfile.mkdtemp(prefix="lasync-bench-http-")
    nginx, plain, tls = start_nginx(d)
    try:
        for title, url, ca in (("plain HTTP/1.1", plain, None), ("TLS (nginx, HTTP/2 offered)", tls, d + "/c.pem")):
            cmds = commands(url, ca, d)
            names = list(cmds)
            res = {k: [] for k in names}
            for rep in range(REPS):
                order = names[rep % len(names):] + names[:rep % len(names)]
                for k in order:
                    res[k].append(run_one(*cmds[k]))
            print(f"\n{N} GETs of 2 KB, {CONC} at a time, one client: {title}")
            print(f"{'client':18} {'wall s (median, range)':26} {'req/s':>7} {'CPU us/req (median, range)':28} {'time / lasync':>13}")
            base = statistics.median(w for w, _ in res["lasync"])
            for k in names:
                walls = [w for w, _ in res[k]]
                cpus = [c * 1e6 / N for _, c in res[k]]
                mw = statistics.median(walls)
                print(f"{k:18} {mw:6.3f} ({min(walls):.3f}-{max(walls):.3f})      {N / mw:7.0f} "
                      f"{statistics.median(cpus):7.0f} ({min(cpus):.0f}-{max(cpus):.0f})          {mw / base:6.2f}")
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(d, ignore_errors=True)

if __name__ == "__main__":
    main()
