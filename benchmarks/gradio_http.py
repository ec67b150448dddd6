"""Call a Gradio 6 app over HTTP the way a client without gradio_client does.

The routes, as gradio 6.31's gradio/routes.py defines them (prefix API_PREFIX = "/gradio_api"):
  POST /gradio_api/upload                     multipart "files" -> JSON list of server paths
  POST /gradio_api/call/<api_name>            {"data": [...]}  -> {"event_id": ...}
  GET  /gradio_api/call/<api_name>/<event_id> server-sent events; read to `complete` (or `error`)
  GET  /gradio_api/info?all_endpoints=true    parameter names, undocumented endpoints included
"""

import collections
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import httpx

API = "/gradio_api"


class CallError(RuntimeError):
    """The server answered with an error event, a bad status, or a stream that ended early."""


def file_data(server_path: str, name: str) -> dict:
    return {"path": server_path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


class GradioHTTP:
    """One client (one connection pool), as one user of the app. By default it sends no session_hash, as a plain
    HTTP client does, so Gradio makes a new session for every call; `session_hash` reuses one session."""

    calls: collections.Counter = collections.Counter()  # base URL -> calls POSTed, over every client

    def __init__(self, base_url: str, timeout: float = 120.0, session_hash: Optional[str] = None):
        self.base = base_url.rstrip("/")
        self.session_hash = session_hash
        # trust_env=False: a proxy from the environment must not sit between us and 127.0.0.1
        self.http = httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def aclose(self):
        await self.http.aclose()

    async def upload(self, name: str, content: bytes) -> dict:
        r = await self.http.post(f"{self.base}{API}/upload", files=[("files", (name, content, "image/png"))])
        if r.status_code != 200:
            raise CallError(f"upload: HTTP {r.status_code} {r.text[:200]}")
        return file_data(r.json()[0], name)

    async def call(self, api_name: str, data: list):
        """POST the call, then read its event stream to the end; -> the output list of the `complete` event."""
        GradioHTTP.calls[self.base] += 1
        body = {"data": data} if self.session_hash is None else {"data": data, "session_hash": self.session_hash}
        r = await self.http.post(f"{self.base}{API}/call/{api_name}", json=body)
        if r.status_code != 200:
            raise CallError(f"{api_name}: HTTP {r.status_code} {r.text[:300]}")
        event_id = r.json()["event_id"]
        event = None
        async with self.http.stream("GET", f"{self.base}{API}/call/{api_name}/{event_id}") as s:
            if s.status_code != 200:
                raise CallError(f"{api_name}: stream HTTP {s.status_code}")
            async for line in s.aiter_lines():
                if line.startswith("event:"):
                    event = line[len("event:") :].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = line[len("data:") :].strip()
                    if event == "complete":
                        return json.loads(payload)
                    raise CallError(f"{api_name}: error event {payload[:300]}")
        raise CallError(f"{api_name}: the event stream ended without a complete event")

    async def info(self) -> dict:
        r = await self.http.get(f"{self.base}{API}/info", params={"all_endpoints": "true"})
        r.raise_for_status()
        return r.json()

    async def get_json(self, path: str):
        r = await self.http.get(f"{self.base}{path}")
        r.raise_for_status()
        return r.json()

    async def post_json(self, path: str):
        r = await self.http.post(f"{self.base}{path}")
        r.raise_for_status()
        return r.json()


@dataclass
class Endpoint:
    """One thing to time: a name for the report, the api_name, files to upload first, and the data to send."""

    name: str
    api_name: str
    uploads: list  # local paths, uploaded on every call (as a client does)
    build: Callable  # (uploaded FileData list, call index) -> data list
    contents: dict = field(default_factory=dict)  # path -> bytes, read once so the client's disk is not timed
    floor: str = "floor"  # the floor run this endpoint's ratio is taken against (one with an upload of the same size)

    def __post_init__(self):
        for p in self.uploads:
            self.contents.setdefault(p, Path(p).read_bytes())


@dataclass
class Timing:
    seconds: float
    ok: bool
    error: Optional[str] = None


async def timed_call(client: GradioHTTP, ep: Endpoint, i: int) -> Timing:
    t0 = time.perf_counter()
    try:
        files = [await client.upload(Path(p).name, ep.contents[p]) for p in ep.uploads]
        await client.call(ep.api_name, ep.build(files, i))
        return Timing(time.perf_counter() - t0, True)
    except (CallError, httpx.HTTPError, ValueError, KeyError) as e:
        return Timing(time.perf_counter() - t0, False, f"{type(e).__name__}: {e}"[:400])


def build_from_info(info: dict, api_name: str, values: dict, slider_value: Optional[Callable] = None) -> Callable:
    """An endpoint's parameters (from /info) -> a function (files, i) -> data list.

    `values` maps parameter names to a value or to a function of the call index; Image parameters take
    the uploads in order; a Slider without a known name gets slider_value(position, i) when that is given;
    anything else falls back to its documented default. Raises KeyError for a parameter it cannot fill.
    """
    ep = info["named_endpoints"].get("/" + api_name)
    if ep is None:
        raise KeyError(f"the app has no endpoint /{api_name}; it has {', '.join(sorted(info['named_endpoints']))}")
    plan = []
    n_images = n_sliders = 0
    for p in ep["parameters"]:
        name, comp = p.get("parameter_name"), p.get("component")
        if comp == "Image":
            plan.append(("file", n_images))
            n_images += 1
        elif name in values:
            plan.append(("value", values[name]))
        elif comp == "Slider" and slider_value is not None:
            plan.append(("slider", n_sliders))
            n_sliders += 1
        elif p.get("parameter_has_default"):
            plan.append(("value", p.get("parameter_default")))
        else:
            raise KeyError(f"/{api_name}: no value for parameter {name!r} ({comp})")

    def build(files: list, i: int) -> list:
        out = []
        for kind, v in plan:
            if kind == "file":
                out.append(files[v])
            elif kind == "slider":
                out.append(slider_value(v, i))
            else:
                out.append(v(i) if callable(v) else v)
        return out

    build.n_images = n_images
    return build
