"""Retrieve as you draw: a page where the gallery re-ranks after every stroke.

  python -m sgvu.tools.serve --workdir runs/zs_sbir                 # then open http://127.0.0.1:8080/
  python -m sgvu.tools.serve --workdir runs/on_the_fly --method ppo --port 8081
  python -m sgvu.tools.serve --bundle runs/zs_sbir/ours/seed0/bundle

It serves one row's exported model (sgvu.export bundle; `--method` / `--seed`
pick it as in `sgvu.tools.search`) and the gallery it was evaluated on, whose
embeddings the bundle already holds (computed once, when the row was trained).

  GET  /                 the page (plain HTML/JS/CSS from sgvu/tools/static: no build step, no CDN)
  GET  /api/info         what is served: method, workdir, gallery size, levels, takes_text
  POST /api/search       {"strokes": [[[x...], [y...]], ...], "top": k, "text": "...",
                          "canvas": [w, h], "target": "<key>", "expected_strokes": n}
                         -> {"results": [{"rank", "score", "key", "category", "image"}], "target": {...}}
  GET  /gallery/<id>.png a gallery photo

Bad requests get HTTP 400 (413 over 1 MB) with {"error": "..."} naming the
key or value; the server goes on serving. Flask (routing, JSON, the request
size limit) under waitress (a multi-threaded pure-Python WSGI server): maintained,
small, and no HTTP parsing of our own.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Sequence

import flask
from werkzeug import exceptions

from sgvu import compile_cache, export
from sgvu.tools import search
from sgvu.tools.live_search import LiveSearch, RequestError

MAX_BODY_BYTES = 1 << 20
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
log = logging.getLogger("sgvu.serve")


def create_app(engine: LiveSearch) -> flask.Flask:
  app = flask.Flask("sgvu.serve", static_folder=STATIC_DIR, static_url_path="/static")
  app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
  app.json.sort_keys = False

  def error(message: str, status: int):
    return flask.jsonify({"error": message}), status

  @app.errorhandler(RequestError)
  def _bad_request(e: RequestError):
    return error(str(e), e.status)

  @app.errorhandler(exceptions.HTTPException)
  def _http(e: exceptions.HTTPException):
    if e.code == 413:
      return error(f"request body over {MAX_BODY_BYTES} bytes (1 MB)", 413)
    return error(f"{e.name}: {e.description}", e.code or 500)

  @app.errorhandler(Exception)
  def _unexpected(e: Exception):
    log.exception("search failed")  # the traceback goes to the server's log; the client gets one line
    return error(f"internal error: {type(e).__name__}: {e}", 500)

  @app.get("/")
  def page():
    return flask.send_from_directory(STATIC_DIR, "index.html")

  @app.get("/api/info")
  def info():
    return flask.jsonify(engine.info())

  @app.post("/api/search")
  def api_search():
    raw = flask.request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    try:
      payload = flask.json.loads(raw)
    except ValueError as e:
      raise RequestError(f"the body is not valid JSON ({e})") from None
    start = time.perf_counter()
    answer = engine.search(engine.parse_request(payload))
    answer["milliseconds"] = round(1000 * (time.perf_counter() - start), 1)
    return flask.jsonify(answer)

  @app.get("/gallery/<name>")
  def gallery(name: str):
    if not name.endswith(".png"):
      raise RequestError(f"gallery images are /gallery/<id>.png, got {name!r}", 404)
    data = engine.thumbnail_png(engine.row(name[:-len(".png")]))
    response = flask.Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response

  return app


def open_engine(workdir: str | None, bundle_dir: str | None, method: str | None, seed: int) -> LiveSearch:
  """The served model; raises search.SearchError naming what is missing."""
  if bundle_dir:
    return LiveSearch(search.load_bundle(bundle_dir), workdir=bundle_dir)
  bundle = search.open_bundle(workdir, method, seed)
  return LiveSearch(bundle, workdir=workdir, method=str(bundle.meta.get("method", method)))


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m sgvu.tools.serve", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  search.add_row_arguments(parser)
  parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
  parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
  parser.add_argument("--threads", type=int, default=4, help="waitress worker threads (default 4)")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
  if args.bundle and args.method:
    print("error: --method picks a row of --workdir; --bundle names the model itself", file=sys.stderr)
    return 2
  compile_cache.enable()
  try:
    engine = open_engine(args.workdir, args.bundle, args.method, args.seed)
  except (search.SearchError, export.BundleError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  start = time.perf_counter()
  engine.warm_up()
  info = engine.info()
  log.info("serving %s (%s) with a gallery of %d %s photos; warm-up %.1f s", info["bundle"], info["experiment"],
           info["gallery_size"], info["split"], time.perf_counter() - start)
  import waitress  # pylint: disable=g-import-not-at-top
  # waitress's own limit sits far above Flask's, so a body over 1 MB gets Flask's JSON 413, not waitress's text.
  server = waitress.create_server(create_app(engine), host=args.host, port=args.port, threads=args.threads,
                                  max_request_body_size=16 * MAX_BODY_BYTES)
  # One parseable line: tests and scripts read the bound port from it (with --port 0).
  print(f"serving on http://{args.host}:{server.effective_port}/", flush=True)
  try:
    server.run()
  except KeyboardInterrupt:
    pass
  finally:
    server.close()
  return 0


if __name__ == "__main__":
  sys.exit(main())
