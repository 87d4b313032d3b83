"""The floor GET /health is measured against: a bare FastAPI route, served the way `dtma-agent` serves itself (the same
uvicorn, loop, HTTP parser and options, the access log on). Started by bench_agent.py; never part of the product.

    python bench/bare_app.py HOST PORT
"""

import sys
import time

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()


@app.get("/health")
async def health():
    return JSONResponse({"status": "ok", "uptime_s": round(time.monotonic(), 1)})


if __name__ == "__main__":
    uvicorn.run(app, host=sys.argv[1], port=int(sys.argv[2]), log_level="info", access_log=True,
                timeout_graceful_shutdown=5)
