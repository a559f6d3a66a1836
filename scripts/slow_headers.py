#!/usr/bin/env python3
# Usage: scripts/slow_headers.py PORT CONNECTIONS INTERVAL_SECONDS DURATION_SECONDS (raise ulimit -n first)
# Slow-header clients against a relay on 127.0.0.1:PORT: N connections each sending one header
# line every INTERVAL seconds; meanwhile /health is timed. Bounded in count and time.
import asyncio, sys, time
PORT=int(sys.argv[1]); N=int(sys.argv[2]); INTERVAL=float(sys.argv[3]); DURATION=float(sys.argv[4])
closed_after=[]; refused=0
async def slow(i):
    global refused
    t0=time.monotonic()
    try:
        r,w=await asyncio.open_connection('127.0.0.1',PORT)
    except OSError:
        refused+=1; return
    try:
        w.write(b"GET /api/gre-chat/health HTTP/1.1\r\nHost: x\r\n"); await w.drain()
        k=0
        while time.monotonic()-t0<DURATION:
            try:
                data=await asyncio.wait_for(r.read(1), timeout=INTERVAL)
                if data==b'':
                    closed_after.append(time.monotonic()-t0); return
            except asyncio.TimeoutError:
                pass
            w.write(f"X-Slow-{k}: 1\r\n".encode()); await w.drain(); k+=1
    except (ConnectionError, OSError):
        closed_after.append(time.monotonic()-t0); return
    finally:
        w.close()
async def health():
    lat=[]
    t_end=time.monotonic()+DURATION
    while time.monotonic()<t_end:
        t=time.monotonic()
        try:
            r,w=await asyncio.wait_for(asyncio.open_connection('127.0.0.1',PORT),2)
            w.write(b"GET /api/gre-chat/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); await w.drain()
            d=await asyncio.wait_for(r.read(64),2); w.close()
            lat.append((time.monotonic()-t)*1000 if d.startswith(b"HTTP/1.1 200") else None)
        except Exception:
            lat.append(None)
        await asyncio.sleep(1)
    return lat
async def main():
    tasks=[asyncio.create_task(slow(i)) for i in range(N)]
    await asyncio.sleep(1)
    lat=await health()
    await asyncio.gather(*tasks)
    ok=[x for x in lat if x is not None]
    print(f"slow connections: {N}, refused at connect: {refused}, closed by the relay: {len(closed_after)}, "
          f"closed after (s) min/median/max: {min(closed_after):.1f}/{sorted(closed_after)[len(closed_after)//2]:.1f}/{max(closed_after):.1f}" if closed_after else "none closed")
    print(f"/health probes: {len(lat)}, answered 200: {len(ok)}, latency ms max: {max(ok) if ok else None:.1f}")
asyncio.run(main())
