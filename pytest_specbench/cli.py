"""The ``specbench`` console script: build, grow and validate spec suites (see :mod:`.toolkit`).

Subcommands map one-to-one onto the toolkit modules; this file only parses arguments, builds the
backends and the cache, and turns errors into one readable line and an exit status:

* 0 — done;
* 1 — could not finish (a model server kept failing, a download failed);
* 2 — bad input or options: the message says what to change;
* 130 — interrupted; rerunning the same command resumes where it stopped.

Heavy libraries are imported by the subcommand that needs them, so ``specbench --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "specbench"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-wrapped examples as written."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("progress")
    g.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar (default: only on a terminal)",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")


def _model_options(p: argparse.ArgumentParser, *, role: str = "model") -> None:
    from .backends.http import HTTP_CLIENTS
    from .toolkit.calls import DEFAULT_MODEL

    g = p.add_argument_group("model and cache")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"the {role} as PROVIDER/NAME: llamacpp/smollm2 (embedded, offline; the default), llamacpp/PATH.gguf, openai/NAME",
    )
    g.add_argument(
        "--base-url",
        action="append",
        default=[],
        metavar="URL",
        help="OpenAI-compatible server for --model (repeat to spread load); default OPENAI_BASE_URL or api.openai.com",
    )
    g.add_argument(
        "--model-config",
        type=Path,
        default=None,
        metavar="PATH",
        help="YAML file of model profiles, as pytest's --specbench-model-config (default: the shipped paper profiles)",
    )
    g.add_argument(
        "--http-client",
        choices=HTTP_CLIENTS,
        default=None,
        help="HTTP client of OpenAI-compatible backends, as pytest's --specbench-http-client (default: aiohttp)",
    )
    g.add_argument(
        "--temperature",
        type=_unit_float,
        default=0.9,
        help="sampling temperature of the writing model (default: %(default)s)",
    )
    g.add_argument(
        "--max-tokens",
        type=_positive_int,
        default=None,
        help="token budget per written prompt (default: 160 for synthesize, 256 for attack)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="base seed; each item derives its own from it and its id (default: %(default)s)",
    )
    g.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        help="requests in flight (default: 1 for llamacpp, 8 for HTTP)",
    )
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: %(default)s)")
    g.add_argument(
        "--retries",
        type=int,
        default=3,
        help="re-sends of a failed request: 429, 5xx, connection errors (default: %(default)s)",
    )
    g.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="SQLite store of model answers, the same format as pytest's --specbench-cache "
        "(default: <platform cache>/pytest-specbench/calls.sqlite3, or under SPECBENCH_CACHE_DIR)",
    )
    g.add_argument("--no-cache", action="store_true", help="do not read or write stored model answers")
    g.add_argument(
        "--restart", action="store_true", help="discard the progress of an interrupted run instead of resuming it"
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Build and validate spec suites for pytest-specbench, following the SpecBench paper's pipeline.",
        epilog=(
            "pipeline:\n"
            "  specbench synthesize specbench_app.yaml -o specbench_app_synth.yaml --per-spec 5\n"
            "  specbench dedupe specbench_app_synth.yaml specbench_app_dedup.yaml --keep 40\n"
            "  specbench attack specbench_app_dedup.yaml specbench_app_attacked.yaml\n"
            "  pytest --specbench-report=run.json\n"
            "  specbench annotate export run.json -o tasks.json --specs specbench_app_attacked.yaml\n"
            "  specbench annotate import labelstudio-export.json -o labels.json\n"
            "  specbench agree run.json labels.json\n"
            "\nEach command resumes where it stopped when run again, and caches model calls."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE and let its pytest_specbench_add_backends hook add model providers, as `pytest -p MODULE` does; repeatable",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "download",
        help="fetch SpecBench into the cache, verified by checksum",
        formatter_class=_Formatter,
        description="Fetch the SpecBench dataset (5 scenarios, 1,500 prompts) and verify every file against the SHA-256 "
        "checksums shipped with pytest-specbench. Files already present and intact are not fetched again.",
        epilog="example:\n  specbench download\n  specbench download --to ./data --scenario Child --scenario Code\n"
        "  pytest --specbench-data ~/.cache/pytest-specbench/specbench -k Child",
    )
    p.add_argument(
        "--to",
        type=Path,
        default=None,
        help="destination folder (default: <platform cache>/pytest-specbench/specbench)",
    )
    p.add_argument("--source", default=None, help="named source from the manifest: github (default) or huggingface")
    p.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="fetch from this base URL instead (files at URL/<Scenario>/<file>)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="checksum manifest to verify against (default: the one shipped in datasets/)",
    )
    p.add_argument("--scenario", action="append", default=[], help="fetch only this scenario (repeatable)")
    p.add_argument("--force", action="store_true", help="fetch again even files that are present and verified")
    _common(p)

    p = sub.add_parser(
        "synthesize",
        help="write prompts that tempt a violation of each safety spec",
        formatter_class=_Formatter,
        description="For each safety spec of SUITE, ask a model for K user messages that would tempt the assistant to break it, "
        "plus safe in-scope messages, and write them as a new suite with their provenance (spec, model, seed).",
        epilog="example:\n  specbench synthesize specbench_recipes.yaml --per-spec 5 --safe 20 -o specbench_recipes_synth.yaml\n"
        "  specbench synthesize specbench_recipes.yaml --model openai/gpt-4.1-mini --per-spec 20",
    )
    p.add_argument("suite", type=Path, help="YAML suite (prompts optional) or SpecBench scenario folder")
    p.add_argument("-o", "--out", type=Path, default=None, help="output suite (default: SUITE_synth.yaml beside SUITE)")
    p.add_argument(
        "--per-spec", type=_positive_int, default=3, help="unsafe prompts per safety spec, K (default: %(default)s)"
    )
    p.add_argument("--safe", type=int, default=None, help="safe in-scope prompts (default: as many as unsafe ones)")
    _model_options(p)
    _common(p)

    p = sub.add_parser(
        "dedupe",
        help="keep the K most diverse prompts (Algorithm 1)",
        formatter_class=_Formatter,
        description="Embed the prompts, then repeatedly take the closest surviving pair and drop the one whose summed "
        "cosine distance to the survivors is smaller, until K remain (the SpecBench paper's Algorithm 1). Prints the "
        "smallest distance left between survivors. Embeddings are cached.",
        epilog="example:\n  specbench dedupe specbench_recipes_synth.yaml specbench_recipes_dedup.yaml --keep 40\n"
        "  specbench dedupe prompts.jsonl kept.jsonl --keep 300 --split unsafe --stats dedupe.json\n"
        "  specbench dedupe prompts.jsonl kept.jsonl --keep 300 --embedder openai/text-embedding-3-large",
    )
    p.add_argument(
        "input", type=Path, help="YAML suite, SpecBench prompts.json (or its folder), or a .json/.jsonl prompt list"
    )
    p.add_argument("output", type=Path, help="where the kept prompts go (same format as the input)")
    p.add_argument("--keep", type=_positive_int, required=True, metavar="K", help="how many prompts to keep")
    p.add_argument(
        "--split",
        choices=("all", "unsafe", "safe"),
        default="all",
        help="which prompts compete; the others are kept as they are (default: %(default)s)",
    )
    p.add_argument(
        "--embedder",
        default=None,
        metavar="NAME",
        help="all-MiniLM-L6-v2 (the default: offline, run by llama.cpp, no PyTorch), llamacpp/PATH.gguf, "
        "openai/NAME (an OpenAI-compatible /v1/embeddings server, e.g. openai/text-embedding-3-large), "
        "st/NAME_OR_PATH (sentence-transformers, needs the [sentence-transformers] extra)",
    )
    p.add_argument(
        "--base-url",
        action="append",
        default=[],
        metavar="URL",
        help="server of an openai/NAME embedder (repeat to spread load); default OPENAI_BASE_URL or api.openai.com",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per embeddings request (default: %(default)s)")
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        help="re-sends of a failed embeddings request: 429, 5xx, connection errors (default: %(default)s)",
    )
    p.add_argument("--stats", type=Path, default=None, help="also write kept/removed ids and distances as JSON")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="folder of the embedding store (default: <platform cache>/pytest-specbench)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    _common(p)

    p = sub.add_parser(
        "attack",
        help="rewrite unsafe prompts with jailbreak tactics, meaning verified",
        formatter_class=_Formatter,
        description="For each unsafe prompt, sample M tactics and rewrite the prompt with each; a verifier model checks that "
        "the rewrite still asks for the same thing, and the first one that does is kept. If none does, retry with 10x the "
        "attempts, up to --max-attempts. The tactic and attempts are recorded; the original request stays as 'intent'.",
        epilog="tactics file layouts: WildTeaming's tactic map (JSON object name -> {definition: [...]}), a JSON/YAML list "
        "of {name, definition}, JSONL, TSV/CSV with name and definition columns, or text lines 'name: definition'.\n\n"
        "example:\n  specbench attack specbench_recipes_dedup.yaml specbench_recipes_attacked.yaml --tactics tactics.txt\n"
        "  specbench attack data/Child/prompts.json child_attacked.json --model openai/gpt-4.1 --verifier openai/gpt-4.1-mini",
    )
    p.add_argument("input", type=Path, help="YAML suite, SpecBench prompts.json, or .json/.jsonl prompt list")
    p.add_argument("output", type=Path, help="where the enhanced prompts go (same format as the input)")
    p.add_argument("--tactics", type=Path, default=None, help="tactics file (default: a few built-in tactics)")
    p.add_argument(
        "--per-prompt",
        type=_positive_int,
        default=3,
        metavar="M",
        help="tactics tried in the first round (default: %(default)s)",
    )
    p.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=30,
        help="cap on rewrites per prompt over all rounds (default: %(default)s)",
    )
    p.add_argument("--verifier", default=None, help="model that checks meaning is preserved (default: --model)")
    p.add_argument(
        "--verifier-base-url",
        action="append",
        default=[],
        metavar="URL",
        help="server for --verifier (default: --base-url)",
    )
    p.add_argument(
        "--schema-dialect",
        choices=("json_schema", "json_object"),
        default="json_schema",
        help="how the verifier's JSON answer is requested over HTTP: json_object for the llama.cpp server (default: %(default)s)",
    )
    _model_options(p, role="rewriting model")
    _common(p)

    p = sub.add_parser(
        "agree",
        help="judge vs judge or judge vs humans: kappa, |dSAR|, rank agreement",
        formatter_class=_Formatter,
        description="Compare two judgements of the same suite: Cohen's kappa per spec and overall, mean |delta s| per case "
        "and |delta SAR|; with several models (several --left/--right pairs, or reports with several groups), Spearman "
        "and Kendall with p-values and top-5/10 overlap of the model rankings.",
        epilog="example:\n  specbench agree run_gpt41_judge.json run_qwen_judge.json\n  specbench agree run.json labels.json --json agreement.json\n"
        "  specbench agree --left m1_j1.json m2_j1.json m3_j1.json --right m1_j2.json m2_j2.json m3_j2.json",
    )
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="two files: reports (--specbench-report) or labels (annotate import)",
    )
    p.add_argument("--left", nargs="+", type=Path, default=[], metavar="FILE", help="first judgement of each model")
    p.add_argument(
        "--right", nargs="+", type=Path, default=[], metavar="FILE", help="second judgement, same order as --left"
    )
    p.add_argument("--alpha", type=float, default=None, help="alpha for recomputing s (default: the first report's)")
    p.add_argument(
        "--na", choices=("paper", "miss"), default=None, help="NA policy for s (default: the first report's)"
    )
    p.add_argument(
        "--top",
        type=_positive_int,
        action="append",
        default=None,
        metavar="K",
        help="top-K overlap to report (repeatable; default 5 and 10)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")

    p = sub.add_parser(
        "alpha",
        help="SAR as a function of alpha from a saved report (no model call)",
        formatter_class=_Formatter,
        description="Recompute SAR for alpha = 0, 0.1, ..., 1 for every model · method group of a saved report, from the "
        "Risk and r stored per case (the paper's Figure 10). SAR is the mean over scenarios, as in the paper's tables; "
        "the pooled mean over all cases is shown beside it when scenarios differ in size.",
        epilog="example:\n  pytest --specbench-report=run.json\n  specbench alpha run.json\n  specbench alpha run.json --json alpha.json",
    )
    p.add_argument("report", type=Path, help="pytest-specbench JSON report (--specbench-report)")
    p.add_argument(
        "--json", type=Path, default=None, help="also write the sweep as JSON ({group: [{alpha, sar, pooled}, ...]})"
    )

    p = sub.add_parser(
        "annotate",
        help="Label Studio tasks for human labels, and their import",
        formatter_class=_Formatter,
        description="Human validation of the judge with Label Studio.",
        epilog="example:\n  specbench annotate export run.json -o tasks.json --specs specbench_recipes.yaml --limit 100\n"
        "  specbench annotate import project-1-export.json -o labels.json\n  specbench agree run.json labels.json",
    )
    asub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = asub.add_parser(
        "export",
        help="write Label Studio tasks and labeling config from a report",
        formatter_class=_Formatter,
        description="One task per judged case: prompt, response and every spec to label YES, NO or NA. Also writes the "
        "labeling interface XML to paste into the Label Studio project's settings. The judge's verdicts are not shown.",
        epilog="example:\n  specbench annotate export run.json -o tasks.json --specs specbench_recipes.yaml --limit 100",
    )
    e.add_argument("report", type=Path, help="pytest-specbench JSON report")
    e.add_argument("-o", "--out", type=Path, required=True, help="tasks JSON to import into Label Studio")
    e.add_argument(
        "--specs",
        type=Path,
        action="append",
        default=[],
        help="suite or SpecBench folder with the spec texts (repeatable; default: downloaded SpecBench)",
    )
    e.add_argument("--config", type=Path, default=None, help="labeling config XML path (default: OUT.label_config.xml)")
    e.add_argument("--limit", type=_positive_int, default=None, help="random sample of this many cases")
    e.add_argument("--seed", type=int, default=0, help="seed of the sample (default: %(default)s)")
    e.add_argument("--scenario", action="append", default=[], help="only this scenario (repeatable)")
    i = asub.add_parser(
        "import",
        help="turn a Label Studio JSON export into a labels file",
        formatter_class=_Formatter,
        description="Read Label Studio's JSON export of an exported project and write the labels in the layout that "
        "'specbench agree' reads. With several annotations on a task, the most recent is used (or --annotator's).",
        epilog="example:\n  specbench annotate import project-1-at-2026-01-01.json -o labels.json --annotator ann@example.org",
    )
    i.add_argument("export", type=Path, help="Label Studio JSON export")
    i.add_argument("-o", "--out", type=Path, required=True, help="labels file to write")
    i.add_argument("--annotator", default=None, help="use only this annotator's labels (email or user id)")
    return parser


# ------------------------------------------------------------------------------------------- commands


def _cache(args: argparse.Namespace) -> Any:
    from .toolkit.calls import open_call_cache

    return None if args.no_cache else open_call_cache(args.cache)


def _backend(
    args: argparse.Namespace, ref: str | None = None, urls: Sequence[str] | None = None, option: str = "--model"
) -> Any:
    from .toolkit.calls import load_plugins, make_backend

    urls = urls if urls is not None else args.base_url
    return make_backend(
        ref or args.model,
        urls,
        timeout=args.timeout,
        retries=args.retries,
        option=option,
        registry=load_plugins(args.plugins),
        profiles=args.model_config,
        http_client=args.http_client,
    )


def cmd_download(args: argparse.Namespace) -> int:
    from .toolkit.download import Manifest, download

    manifest = Manifest.load(args.manifest) if args.manifest else Manifest.load()
    result = download(
        args.to,
        manifest=manifest,
        source=args.source,
        base_url=args.base_url,
        scenarios=args.scenario,
        force=args.force,
        show_progress=args.progress,
    )
    print(
        f"SpecBench in {result.folder}: {len(result.fetched)} file(s) fetched, {len(result.skipped)} already verified"
    )
    print(f"use it with: pytest --specbench-data {result.folder}")
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .toolkit.synthesize import default_output, synthesize

    out = args.out or default_output(args.suite)
    from .toolkit.calls import cached

    backend = cached(_backend(args), _cache(args))
    result = synthesize(
        args.suite,
        out,
        backend,
        per_spec=args.per_spec,
        safe=args.safe,
        temperature=args.temperature,
        max_tokens=args.max_tokens or 160,
        seed=args.seed,
        concurrency=args.concurrency,
        restart=args.restart,
        show_progress=args.progress,
    )
    print(
        f"wrote {result.total - len(result.failed)} prompt(s) to {', '.join(map(str, result.written))} "
        f"({result.made} new, {result.reused} resumed, {backend.calls} model call(s), the rest from cache)"
    )
    if result.failed:
        print(
            f"warning: no usable text for {len(result.failed)} item(s): {', '.join(result.failed[:5])}; "
            "rerun with another --seed or --model to fill them",
            file=sys.stderr,
        )
    return 0


def cmd_dedupe(args: argparse.Namespace) -> int:
    from .toolkit.calls import progress
    from .toolkit.dedupe import cosine_distances, embed, select_diverse
    from .toolkit.embedders import DEFAULT_EMBEDDER
    from .toolkit.errors import InputError
    from .toolkit.store import PromptSet, write_json

    prompts = PromptSet.load(args.input)
    pool = [r for r in prompts.records if args.split == "all" or r.get("label") == args.split]
    if args.keep > len(pool):
        where = "" if args.split == "all" else f" with label {args.split}"
        raise InputError(
            f"--keep {args.keep} is more than the {len(pool)} prompt(s){where} in {args.input}; choose K <= {len(pool)}"
        )
    from .toolkit.calls import open_embedding_cache

    cache = None if args.no_cache else open_embedding_cache(args.cache_dir)
    texts = [prompts.text(r) for r in pool]
    with progress(len(texts), "embed", "prompt", args.progress) as bar:
        vectors = embed(
            texts,
            model=args.embedder or DEFAULT_EMBEDDER,
            cache=cache,
            bar=bar,
            base_urls=args.base_url,
            timeout=args.timeout,
            retries=args.retries,
        )
    with progress(len(pool) - args.keep, "dedupe", "removal", args.progress) as bar:
        sel = select_diverse(cosine_distances(vectors), args.keep, on_step=lambda: bar.update(1))
    removed = {pool[k]["id"] for k in sel.removed}
    kept = [r for r in prompts.records if r["id"] not in removed]
    written = prompts.write(args.output, kept)
    print(f"kept {args.keep} of {len(pool)} prompt(s) ({args.split}); wrote {', '.join(map(str, written))}")
    print(f"smallest cosine distance between kept prompts: {sel.d_min:.4f} (before: {sel.d_min_before:.4f})")
    if args.stats:
        write_json(
            args.stats,
            {
                "input": str(args.input),
                "keep": args.keep,
                "candidates": len(pool),
                "split": args.split,
                "embedder": args.embedder or DEFAULT_EMBEDDER,
                "d_min": sel.d_min,
                "d_min_before": sel.d_min_before,
                "kept": [pool[k]["id"] for k in sel.keep],
                "removed_in_order": [pool[k]["id"] for k in sel.removed],
            },
        )
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    from .toolkit.attack import attack, load_tactics
    from .toolkit.calls import cached

    tactics = load_tactics(args.tactics) if args.tactics else None
    cache = _cache(args)
    model = _backend(args)
    verifier_ref, verifier_urls = args.verifier or args.model, args.verifier_base_url or args.base_url
    same = verifier_ref == args.model and list(verifier_urls) == list(args.base_url)
    checker = model if same else _backend(args, ref=verifier_ref, urls=verifier_urls, option="--verifier")
    attacker, verifier = cached(model, cache, "responses"), cached(checker, cache, "verdicts")
    result = attack(
        args.input,
        args.output,
        attacker,
        verifier,
        tactics=tactics,
        per_prompt=args.per_prompt,
        max_attempts=args.max_attempts,
        temperature=args.temperature,
        max_tokens=args.max_tokens or 256,
        schema_dialect=args.schema_dialect,
        seed=args.seed,
        concurrency=args.concurrency,
        restart=args.restart,
        show_progress=args.progress,
    )
    print(
        f"enhanced {result.enhanced} of {result.unsafe} unsafe prompt(s) ({result.reused} resumed); wrote {', '.join(map(str, result.written))}"
    )
    if result.failed:
        print(
            f"warning: no faithful rewrite within {args.max_attempts} attempts for {len(result.failed)} prompt(s) "
            f"({', '.join(result.failed[:5])}); they are kept unchanged with attack.failed = true",
            file=sys.stderr,
        )
    return 0


def cmd_agree(args: argparse.Namespace) -> int:
    import json

    from .toolkit.agree import DEFAULT_TOP, compare, load_side, render
    from .toolkit.errors import InputError
    from .toolkit.store import write_json

    if args.files and (args.left or args.right):
        raise InputError("give either two FILEs or --left/--right lists, not both")
    if args.files:
        if len(args.files) != 2:
            raise InputError(
                f"agree compares two files (got {len(args.files)}); for several models use --left A1 A2 ... --right B1 B2 ..."
            )
        lefts, rights = [args.files[0]], [args.files[1]]
    else:
        lefts, rights = args.left, args.right
        if not lefts or len(lefts) != len(rights):
            raise InputError(f"--left and --right need the same number of files (got {len(lefts)} and {len(rights)})")
    pairs = [(load_side(a), load_side(b)) for a, b in zip(lefts, rights)]
    result = compare(pairs, alpha=args.alpha, na=args.na, tops=args.top or DEFAULT_TOP)
    for line in render(result):
        print(line)
    if args.json:
        write_json(args.json, json.loads(json.dumps(result)))
    return 0


def cmd_alpha(args: argparse.Namespace) -> int:
    import json

    from .reporting.run import alpha_sweep_lines, sweep_from_report
    from .toolkit.errors import InputError
    from .toolkit.store import write_json

    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{args.report}: cannot read the report: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{args.report}: not a JSON report (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(report, dict) or not isinstance(report.get("cases"), list):
        raise InputError(
            f"{args.report}: not a pytest-specbench report (no 'cases' list); write one with --specbench-report"
        )
    sweep = sweep_from_report(report)
    if not sweep:
        raise InputError(f"{args.report}: the report holds no scored case, so there is nothing to sweep")
    for line in alpha_sweep_lines(sweep, (report.get("settings") or {}).get("alpha")):
        print(line)
    if args.json:
        write_json(args.json, {g: [p.to_dict() for p in pts] for g, pts in sweep.items()})
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from .toolkit.annotate import export_tasks, import_labels

    if args.action == "export":
        n, config = export_tasks(
            args.report,
            args.out,
            specs=args.specs,
            config=args.config,
            limit=args.limit,
            seed=args.seed,
            scenarios=args.scenario,
        )
        print(f"wrote {n} Label Studio task(s) to {args.out} and the labeling interface to {config}")
        print(
            "in Label Studio: create a project, paste the XML under Settings > Labeling Interface > Code, then import the tasks"
        )
        return 0
    result = import_labels(args.export, args.out, annotator=args.annotator)
    print(
        f"wrote labels for {result.cases} case(s) to {args.out}"
        + (f"; {result.skipped} task(s) had no usable annotation" if result.skipped else "")
    )
    if result.missing_labels:
        print(f"warning: {result.missing_labels} spec(s) were left unlabelled and are not compared", file=sys.stderr)
    return 0


COMMANDS = {
    "download": cmd_download,
    "synthesize": cmd_synthesize,
    "dedupe": cmd_dedupe,
    "attack": cmd_attack,
    "agree": cmd_agree,
    "alpha": cmd_alpha,
    "annotate": cmd_annotate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``specbench`` script; returns the exit status (see module doc)."""
    from .errors import ConfigError, SpecbenchError, SuiteError
    from .redact import Redactor

    parser = build_parser()
    args = parser.parse_args(argv)
    redact = Redactor()
    redact.add_env("OPENAI_API_KEY")
    where = args.command + (f" {args.action}" if getattr(args, "action", None) else "")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\n{PROG} {where}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except SpecbenchError as exc:
        status = getattr(exc, "exit_status", 2 if isinstance(exc, (ConfigError, SuiteError)) else 1)
        hint = "" if status == 2 else " (finished items are saved: run the same command again to resume)"
        print(
            f"{PROG} {where}: error: {redact(str(exc))}{hint if args.command in ('synthesize', 'attack') else ''}",
            file=sys.stderr,
        )
        return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
