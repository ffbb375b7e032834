"""The one table runner: named rows x training seeds -> results.json, the printed table, pictures.

An experiment gives a `Table`: its rows (methods), a function that trains and
evaluates one row for one seed in its own directory, and what each row's
result depends on (its settings). The runner owns everything around that:
- row reuse: a finished (row, seed) is reused only when its fingerprint (the
  row's settings, the seed and the code version) is unchanged; otherwise its
  directory is cleared and it is trained again, so a stale checkpoint can
  never leak into a row of other settings;
- results.json: rows as mean +- std over seeds ("seeds": n, "<metric>_std"),
  written after every finished seed; earlier rows of the same settings that
  this run did not ask for are kept;
- stop requests (Ctrl-C / SIGTERM): honoured at the next safe point of any
  stage; the same command resumes;
- timings, the printed table (with smoke-test and K >= gallery flags), and the
  pictures hook once every row is done;
- with Table.baseline: which differences exceed two standard deviations
  (sgvu/table_stats.py), printed under the table and kept in results.json.

Layout: WORKDIR/<row slug>/seed<k>/ holds the row's checkpoints,
metrics.jsonl, result.json and (trained rows) bundle/.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import glob
import json
import os
import re
import shutil
import time
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import numpy as np

from sgvu import event_files
from sgvu import interrupt
from sgvu import table_stats

RESULT_FILE = "result.json"
FINGERPRINT_FILE = "FINGERPRINT"
# Keys that never change what a row computes: left out of fingerprints.
NEUTRAL_KEYS = ("methods", "seeds", "name", "smoke_test", "log_every", "checkpoint_every", "keep_checkpoints",
                "grid_method", "grid_queries", "num_workers", "cache_dir", "ship", "use_shipped", "tfds_data_dir")


@dataclasses.dataclass
class Table:
  """What an experiment hands the runner."""
  name: str
  split: str  # label of the evaluated split in the table ('unseen', 'test')
  metrics: Sequence[str]  # table columns, in order
  methods: Sequence[str]  # rows to run, in order
  run_row: Callable[[str, int, str], Mapping[str, Any]]  # (method, seed index, row dir) -> metrics + extras
  settings: Callable[[str], Any]  # method -> JSON-able settings its result depends on
  trains: Callable[[str], bool] = lambda method: True  # False: deterministic, one run for every seed
  seeds: int = 1
  gallery_size: int | None = None  # flags metrics @K with K >= gallery size
  description: str = ""
  smoke_test: bool = False
  pictures: Callable[[dict[str, dict]], None] | None = None  # rows by method -> draws (after all rows)
  extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # more keys for results.json
  fingerprint: str = ""  # table_fingerprint(config): printed under the table and kept in results.json
  baseline: str = ""  # a row name: differences from it beyond 2 std are printed and kept in results.json
  code: str = ""  # code_version(config.task) the rows depend on; '' = all of sgvu


def slug(name: str) -> str:
  """A method name as a directory name: 'reward-1/sqrt(rank)' -> 'reward-1_sqrt_rank'."""
  name = name.replace("<=", "_le").replace("/", "_")
  return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_")


def row_dir(workdir: str, method: str, seed: int) -> str:
  return os.path.join(workdir, slug(method), f"seed{seed}")


# Name -> module maps: left out of every code hash, so adding an experiment, a dataset or a bundle model
# changes neither another experiment's tables nor the shipped CLIP (the modules they name are hashed where
# a task imports them; models/registry only rebuilds exported bundles, which no table metric reads).
REGISTRIES = ("sgvu.tasks.registry", "sgvu.data.registry", "sgvu.models.registry")
# What runs every table besides the task's own closure; tools only read results.
RUNNER = ("sgvu.main", "sgvu.experiment")
# Modules that only draw or log what was computed (pictures, plots, fonts, event files): left out of every code
# hash like the registries, so a label or a log line never stales a table or un-ships the CLIP.
OUTPUT_ONLY = ("sgvu.viz", "sgvu.plots", "sgvu.fonts", "sgvu.event_files", "sgvu.tasks.context_pictures",
               "sgvu.tasks.composed_pictures", "sgvu.tasks.localization_pictures")


def _hash_files(paths: Sequence[str]) -> str:
  """Hash of the files' paths (relative to sgvu/) and contents."""
  root = os.path.dirname(os.path.abspath(__file__))
  h = hashlib.sha256()
  for path in sorted(paths):
    with open(path, "rb") as f:
      h.update(os.path.relpath(path, root).encode() + f.read())
  return h.hexdigest()[:16]


def file_hashes(paths: Sequence[str]) -> dict[str, str]:
  """sha256 (16 hex) of each file's content, by path relative to sgvu/ (provenance that can name a change)."""
  root = os.path.dirname(os.path.abspath(__file__))
  out = {}
  for path in sorted(paths):
    with open(path, "rb") as f:
      out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()[:16]
  return out


@functools.cache
def code_version(task: str | None = None) -> str:
  """Hash of the source a table of experiment `task` runs (its module's closure, function-level imports
  included, plus the runner); task=None: all of sgvu but tools. A changed method, loss or metric
  invalidates that task's rows and tables, and code no experiment of `task` imports does not."""
  root = os.path.dirname(os.path.abspath(__file__))
  if task is not None:
    from sgvu.tasks import registry  # pylint: disable=g-import-not-at-top
    return _hash_files(source_closure((registry.module_name(task),) + RUNNER,
                                      exclude=("sgvu.tools",) + REGISTRIES + OUTPUT_ONLY, local_imports=True))
  paths = []
  for folder, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if d not in ("tools", "__pycache__", "assets")]
    paths += [os.path.join(folder, n) for n in files if n.endswith(".py")]
  return _hash_files(paths)


def _module_file(root: str, name: str) -> str | None:
  """'sgvu.data.synth' -> its file under root (the sgvu folder), or None if not a module of sgvu."""
  parts = name.split(".")
  if parts[0] != "sgvu":
    return None
  base = os.path.join(os.path.dirname(root), *parts)
  for path in (base + ".py", os.path.join(base, "__init__.py")):
    if os.path.isfile(path):
      return path
  return None


def _imported_modules(tree, local_imports: bool) -> list[str]:
  """Absolute module names an AST imports: at module level, or anywhere with local_imports."""
  nodes = ast.walk(tree) if local_imports else tree.body
  out = []
  for node in nodes:
    if isinstance(node, ast.Import):
      out.extend(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      out.append(node.module)
      out.extend(f"{node.module}.{a.name}" for a in node.names)
  return out


def source_closure(modules: str | Sequence[str], exclude: Sequence[str] = (), *,
                   local_imports: bool = False) -> list[str]:
  """The sgvu source files `modules` import, directly or not (static, with the packages' __init__ files
  on the way), leaving out modules under the `exclude` prefixes. Module-level imports only by default
  (a function-local import is a conditional dependency); local_imports=True follows those too."""
  root = os.path.dirname(os.path.abspath(__file__))
  seen, todo = set(), [modules] if isinstance(modules, str) else list(modules)
  while todo:
    name = todo.pop()
    parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
    for candidate in [name] + parents:
      if any(candidate == e or candidate.startswith(e + ".") for e in exclude):
        continue
      path = _module_file(root, candidate)
      if path is None or path in seen:
        continue
      seen.add(path)
      with open(path) as f:
        todo.extend(_imported_modules(ast.parse(f.read(), path), local_imports))
  return sorted(seen)


@functools.cache
def module_version(module: str, exclude: tuple[str, ...] = ()) -> str:
  """Hash of the sgvu source `module` depends on (module-level source_closure, registries left out):
  what a cached artefact of that module (the SynthSketch CLIP) must be rebuilt after, and nothing else."""
  return _hash_files(source_closure(module, tuple(exclude) + REGISTRIES + OUTPUT_ONLY))


def asset_versions() -> list[str]:
  """Sorted sha256 of every file shipped under sgvu/assets/ (path and content); [] while there is none."""
  root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
  out = []
  for folder, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out.append(hashlib.sha256(os.path.relpath(path, root).encode() + b"\0" + f.read()).hexdigest())
  return sorted(out)


def without_neutral(settings: Any) -> Any:
  """A config (or dict) minus the keys in NEUTRAL_KEYS, at any depth."""
  if hasattr(settings, "to_dict"):
    settings = settings.to_dict()
  if isinstance(settings, Mapping):
    return {k: without_neutral(v) for k, v in settings.items() if k not in NEUTRAL_KEYS}
  if isinstance(settings, (list, tuple)):
    return [without_neutral(v) for v in settings]
  return settings


def fingerprint(settings: Any, seed: int, code: str | None = None) -> str:
  """What one (row, seed) or shared stage depends on; `code`: its code_version (default: all of sgvu)."""
  blob = json.dumps({"settings": without_neutral(settings), "seed": seed, "code": code or code_version()},
                    sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def table_fingerprint(config: Any) -> str:
  """What a printed table depends on: the code, the config minus NEUTRAL_KEYS and the shipped assets.

  README.md puts it above each results table; tests/test_readme_tables.py fails when it no longer matches."""
  blob = json.dumps({"code": code_version(config["task"]), "config": without_neutral(config), "assets": asset_versions()},
                    sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _write_json(path: str, value) -> None:
  if jax.process_index() != 0:
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
  os.replace(tmp, path)  # never a half-written file


def prepare_dir(directory: str, print_: str) -> bool:
  """Makes `directory` belong to fingerprint `print_`: True if it already did, else clears it (stale work)."""
  path = os.path.join(directory, FINGERPRINT_FILE)
  try:
    with open(path) as f:
      if f.read().strip() == print_:
        return True
  except OSError:
    pass
  if os.path.exists(directory) and os.listdir(directory):
    logging.warning("%s was made with other settings or code: starting it over", directory)
    if jax.process_index() == 0:
      shutil.rmtree(directory)
  if jax.process_index() == 0:
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
      f.write(print_)
  return False


def cached_stage(directory: str, settings: Any, code: str | None = None) -> bool:
  """For a shared stage (frozen features, a pretrained model): True when `directory` holds its finished
  output for these settings; else the directory is cleared for a fresh run. Mark it done with `finish_stage`."""
  print_ = fingerprint(settings, 0, code)
  return prepare_dir(directory, print_) and os.path.exists(os.path.join(directory, "DONE"))


def finish_stage(directory: str) -> None:
  if jax.process_index() == 0:
    open(os.path.join(directory, "DONE"), "w").close()


def _seed_result(table: Table, method: str, seed: int, directory: str) -> dict:
  """One (row, seed): reused when its fingerprint matches, else trained and evaluated now."""
  print_ = fingerprint(table.settings(method), seed, table.code)
  result_path = os.path.join(directory, RESULT_FILE)
  if prepare_dir(directory, print_):
    done = _read_json(result_path)
    if done is not None and done.get("fingerprint") == print_:
      logging.info("%s seed %d: reusing %s", method, seed, result_path)
      return done
  interrupt.check(f"before {method} seed {seed}")
  t = time.perf_counter()
  out = dict(table.run_row(method, seed, directory))
  interrupt.check(f"after evaluating {method} seed {seed}")
  missing = [m for m in table.metrics if not isinstance(out.get(m), float)]
  if missing:
    raise ValueError(f"row {method!r} reported no float for {missing} (got {sorted(out)})")
  result = {**out, "seed": seed, "seconds": round(time.perf_counter() - t, 1), "fingerprint": print_}
  _write_json(result_path, result)
  return result


def combine(method: str, split: str, metrics: Sequence[str], per_seed: Sequence[Mapping[str, Any]]) -> dict:
  """A table row: mean and population std over seeds of each metric; extras from the first seed."""
  row: dict[str, Any] = {"method": method, "split": split, "seeds": len(per_seed)}
  for m in metrics:
    values = np.asarray([r[m] for r in per_seed], np.float64)
    row[m] = float(values.mean())
    row[f"{m}_std"] = float(values.std())
  first = per_seed[0]
  for k, v in first.items():
    if k not in row and k not in metrics and k not in ("seed", "fingerprint", "seconds"):
      row[k] = v
  row["seconds"] = round(sum(r.get("seconds", 0.0) for r in per_seed), 1)
  row["per_seed"] = [{"seed": r["seed"], **{m: r[m] for m in metrics}} for r in per_seed]
  row["fingerprints"] = [r["fingerprint"] for r in per_seed]
  return row


def _earlier_rows(path: str, table: Table, current: Sequence[str]) -> list[dict]:
  """Rows of an earlier results.json that this run did not ask for and whose settings are unchanged."""
  earlier = _read_json(path) or {}
  kept = []
  for row in earlier.get("rows", []):
    method = row.get("method")
    if method in current or not isinstance(row.get("fingerprints"), list):
      continue
    try:
      prints = [fingerprint(table.settings(method), s, table.code) for s in range(len(row["fingerprints"]))]
    except (KeyError, ValueError):  # a method this code no longer has
      continue
    if prints == row["fingerprints"]:
      kept.append(row)
  return kept


def format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], *, flagged: Sequence[str] = ()) -> str:
  """Markdown table; mean +- std where a row has several seeds; '*' marks flagged metrics."""
  head = ["method", "split"] + [m + ("*" if m in flagged else "") for m in metrics] + ["seeds"]
  lines = [head]
  for r in rows:
    cells = []
    for m in metrics:
      if not isinstance(r.get(m), float):
        cells.append("-")
      elif r.get("seeds", 1) > 1:
        cells.append(f"{r[m]:.4f} ± {r.get(m + '_std', 0.0):.4f}")
      else:
        cells.append(f"{r[m]:.4f}")
    lines.append([str(r.get("method")), str(r.get("split"))] + cells + [str(r.get("seeds", 1))])
  widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
  fmt = lambda l: "| " + " | ".join(c.ljust(w) for c, w in zip(l, widths)) + " |"
  return "\n".join([fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(l) for l in lines[1:]])


def flagged_metrics(metrics: Sequence[str], gallery_size: int | None) -> list[str]:
  """Metrics '<name>@K' whose K >= the gallery size: they no longer cut the ranking at K."""
  if not gallery_size:
    return []
  out = []
  for m in metrics:
    k = re.fullmatch(r".*@(\d+)", m)
    if k and int(k.group(1)) >= gallery_size:
      out.append(m)
  return out


def log_pictures(workdir: str) -> list[str]:
  """Every picture the table drew in WORKDIR (retrieval grids, curves) as a TensorBoard image summary
  in WORKDIR's event file, tagged by its file name; returns the tags."""
  paths = sorted(glob.glob(os.path.join(workdir, "*.png")))
  if not paths:
    return []
  writer = event_files.EventWriter(workdir)
  try:
    for path in paths:
      writer.image(os.path.splitext(os.path.basename(path))[0], path)
  finally:
    writer.close()
  return [os.path.splitext(os.path.basename(p))[0] for p in paths]


def run(table: Table, workdir: str, *, started: float | None = None) -> dict:
  """Runs every (row, seed) not already done with these settings; returns {"rows": [...]}.

  `started` (time.perf_counter() when the experiment began, before shared stages such as CLIP
  pretraining) makes the reported wall time the whole job's; default: now."""
  if not table.methods:
    raise ValueError("config.methods is empty")
  if table.seeds < 1:
    raise ValueError(f"config.seeds={table.seeds} must be >= 1")
  t0 = time.perf_counter() if started is None else started
  results_path = os.path.join(workdir, "results.json")
  flagged = flagged_metrics(table.metrics, table.gallery_size)
  extra = {**table.extra, "smoke_test": table.smoke_test, "code_version": table.code or code_version()}
  if table.fingerprint:
    extra["table_fingerprint"] = table.fingerprint
  if flagged:
    extra["flagged"] = {m: f"K >= gallery size {table.gallery_size}" for m in flagged}
  earlier = _earlier_rows(results_path, table, table.methods)
  rows: list[dict] = []
  with interrupt.handling():
    for method in table.methods:
      seeds = range(table.seeds if table.trains(method) else 1)
      per_seed = [_seed_result(table, method, s, row_dir(workdir, method, s)) for s in seeds]
      row = combine(method, table.split, table.metrics, per_seed)
      rows.append(row)
      _write_json(results_path, {"experiment": table.name, "rows": rows + earlier, **extra})
      logging.info("%s: %s", method, " ".join(f"{m}={row[m]:.4f}" for m in table.metrics))
    if table.pictures is not None and jax.process_index() == 0:
      interrupt.check("before drawing the pictures")
      table.pictures({r["method"]: r for r in rows})
    if jax.process_index() == 0:
      log_pictures(workdir)
  wall = time.perf_counter() - t0
  fixed = [r["method"] for r in rows if not table.trains(r["method"])]
  stats = table_stats.beyond_2std(rows, table.metrics, table.baseline, fixed) if table.baseline else None
  if stats is not None:
    pairs = table_stats.pairwise_beyond_2std(rows, table.metrics[0], fixed)
    extra["beyond_2std"] = {**stats, "pairs": {table.metrics[0]: [list(p) for p in pairs]}}
  _write_json(results_path, {"experiment": table.name, "rows": rows + earlier, **extra,
                             "wall_seconds": round(wall, 1)})
  notes = []
  if table.smoke_test:
    notes.append("smoke test: a tiny variant that checks the pipeline; its numbers mean nothing")
  if flagged:
    notes.append(f"* K >= gallery size ({table.gallery_size}): the metric does not cut the ranking at K")
  if any(r["seeds"] == 1 and table.trains(r["method"]) for r in rows):
    notes.append("rows with 1 seed have no standard deviation (config.seeds)")
  header = f"{table.name}: {table.description} ({wall / 60:.1f} min)".replace(":  (", ": (")
  stamp = [f"table fingerprint: {table.fingerprint}"] if table.fingerprint else []
  block = ["", table_stats.format_block(stats, pairs, table.metrics[0], fixed)] if stats is not None else []
  print("\n".join([f"\n{header}", format_table(rows, table.metrics, flagged=flagged)] + stamp + notes + block)
        + "\n")
  return {"rows": rows}
