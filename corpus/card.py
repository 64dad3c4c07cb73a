"""The dataset card (corpus/README.md) and the run report (report.md + its plots), from stats.json."""

from __future__ import annotations

from pathlib import Path

from corpus.diversity import TABLE, format_metric
from corpus.io import atomic_path

PLOTS = {"axes": "report-axes.png", "openers": "report-openers.png", "distinct": "report-distinct.png"}
MAX_VALUES = 30  # values of one entity shown in the report (its plot and its list), the most frequent first

def _size_category(n: int) -> str:
    for limit, name in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]:
        if n < limit:
            return name
    return "10M<n<100M"


def _table(rows: list[tuple], head: tuple) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _counts_section(s: dict) -> str:
    c, t = s["counts"], s["tokens"]
    rows = [
        ("prompts generated", f"{c['prompts']:,}"),
        ("failed requests (after retries)", f"{c['failed_requests']:,}"),
        ("accepted by the quality gate", f"{c['accepted_by_gate']:,}"),
        ("exact duplicates removed", f"{c['exact_dups']:,}"),
        ("near duplicates removed", f"{c['near_dups']:,}"),
        ("contaminated (benchmark overlap) removed", f"{c['contaminated']:,}"),
        ("documents in the corpus", f"{c['kept']:,}"),
        ("tokens in the corpus", f"{t['corpus']:,} ({s['tokenizer']})"),
        ("tokens per document", f"{t['per_kept_doc']:,.0f}"),
    ]
    return _table(rows, ("stage", "count"))


def _rejections(s: dict) -> str:
    if not s["rejections"]:
        return "No extract was rejected by the gate."
    rows = [(f"`{k}`", f"{v:,}", f"{v / max(1, s['counts']['prompts']):.1%}") for k, v in s["rejections"].items()]
    return _table(rows, ("reason", "extracts", "share of prompts"))


def _provenance(s: dict) -> str:
    """The teacher's provenance line, when the model directory recorded one (``corpus teacher``)."""
    p = s["model_provenance"]
    if not p:
        return ""
    return (f"\n  The model is `{p['name']}` ({p['parameters']} parameters, license {p['license']}), from the "
            f"{p['source']} (sha256 {p['sha256'][:12]}…), {p['quantisation']}: {p['note']}.")


def _primary(d: dict) -> str:
    """What the plan's primary entity is, in words: topic leaves, or the values of the list that leads."""
    return "topic leaves" if d["primary"] == "topic" else f"values of {d['primary']}"


def dataset_card(recipe, s: dict) -> str:
    d = s["diversity"]
    header = "\n".join(
        [
            "---",
            "language:",
            "- en",
            "license: other",
            "task_categories:",
            "- text-generation",
            "tags:",
            "- synthetic",
            *(f"- {t}" for t in recipe.card.tags),
            "size_categories:",
            f"- {_size_category(s['counts']['kept'])}",
            "configs:",
            "- config_name: default",
            "  data_files:",
            "  - split: train",
            "    path: part-*.parquet",
            "---",
        ]
    )
    entities = ([f"one leaf of a {len(recipe.topics.leaves):,}-leaf topic tree"] if recipe.topics.leaves else []) + (
        [f"one of {len(recipe.audiences)} audiences"] if len(recipe.audiences) else []) + [
        f"one value of {a} ({len(v):,})" for a, v in recipe.entity_axes.items()]
    return f"""{header}

# Synthetic corpus `{s['recipe']}` ({s['recipe_hash']})

{" ".join(recipe.card.description.split())} Made by `corpus build`, with the method of "Textbooks Are All You Need"
(phi-1): every prompt forced onto a different combination of entities.

{"**This corpus was made with the smoke model, whose text is random noise: it exercises the pipeline and is not training data.**" if s["noise"] else ""}

## How it was made

- **Teacher model**: `{s['model']}` via the `{s['engine']}` engine; temperature {s['sampling']['temperature']},
  top_p {s['sampling']['top_p']}, repetition penalty {s['sampling']['repetition_penalty']}, at most {s['sampling']['max_tokens']} tokens, a seed per request.{_provenance(s)}
- **Prompts**: every prompt combines {", ".join(entities)}, spread evenly by a seeded plan (seed {s['seed']}).
- **Quality gate**: extracts are parsed, their Python snippets parsed and run in a sandbox; the
  first failing check is the rejection reason.
- **Deduplication**: exact (normalised hash) and near-duplicates (MinHash LSH), first
  occurrence in index order kept.
- **Decontamination**: documents overlapping HumanEval prompts or solutions were removed.
- **Budget**: {s['target_tokens']:,} tokens requested; the corpus ends at the first document that reaches it.
- The full resolved recipe is `../recipe.yaml` (hash {s['recipe_hash']}); all counts are in `../stats.json`.

## Counts

{_counts_section(s)}

### Rejections by the gate

{_rejections(s)}

## Coverage and diversity

{d['leaves_covered']:,} of {d['leaves_total']:,} {_primary(d)} appear ({d['min_docs_per_covered_leaf']}–{d['max_docs_per_leaf']} documents per covered value);
{len(d['audiences'])} audiences. {_text_summary(s['text_diversity']['corpus'])}

## Columns

`id` (`<recipe hash>-<prompt index>`), `index`, `text`, `n_tokens`, `topic`, `audience`,
{", ".join(f"`{a}`" for a in recipe.entity_axes)}, `prompt`, `outline`, `model`, `engine`,
`temperature`, `top_p`, `seed`, `finish_reason`, gate fields (with `statement`, `solution` and `tests`
for exercises) and dedup fields. Load with
`datasets.load_dataset("parquet", data_dir=...)`, pandas or DuckDB.

## License

The texts were generated by `{s['model']}`. Their use is governed by that model's terms of use
and license; check them before training or redistributing. The tool that made this corpus is
Apache-2.0.
"""


def _text_summary(m: dict) -> str:
    """One sentence of the corpus's text metrics (``corpus.diversity``) for the card."""
    if not m["documents"]:
        return ""
    top = m["openers_top10"][0]
    f = {k: format_metric(k, m[k], 2) for k, _ in TABLE}
    return (f"Text: distinct word 1/2/3/4-grams {f['distinct_1']}/{f['distinct_2']}/{f['distinct_3']}/{f['distinct_4']}; "
            f"the most common opening (\"{top[0]}\") starts {format_metric('opener_top_share', m['opener_top_share'], 3)} of "
            f"documents; gzip compresses the text {f['compression_ratio']}×; {format_metric('near_duplicate_rate', m['near_duplicate_rate'], 3)} "
            f"of gate-accepted texts were duplicates; {f['function_names_distinct']} distinct function names in {f['snippets']} snippets. "
            "Definitions: `corpus diversity --help`.")


def _text_table(t: dict) -> str:
    rows = [(f"`{k}`", format_metric(k, t["corpus"][k]), format_metric(k, t["rejected"][k])) for k, _ in TABLE]
    return _table(rows, ("metric", "corpus", "rejected by the gate"))


def _openers(t: dict) -> str:
    rows = [(f"`{o or '(empty)'}`", f"{c:,}") for o, c in t["corpus"]["openers_top10"]]
    return _table(rows, ("first three words", "documents")) if rows else "No documents."


def report_plots(s: dict, out: Path) -> None:
    """The report's plots (``PLOTS``) into ``out``, each written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Long word lists (TinyStories' ~500 nouns): the MAX_VALUES most prompted values of each.
    per = {col: dict(sorted(vals.items(), key=lambda kv: -kv[1]["prompts"])[:MAX_VALUES])
           for col, vals in s["diversity"]["per_value"].items() if vals}
    shown = {col: f" ({len(per[col])} most prompted of {len(vals)} values)" if len(vals) > MAX_VALUES else ""
             for col, vals in s["diversity"]["per_value"].items() if vals}
    t = s["text_diversity"]
    figs = {}
    # Kept documents and acceptance per value of each axis: one row of two panels per axis.
    heights = [max(1, len(v)) for v in per.values()] or [1]
    fig, axes = plt.subplots(len(heights), 2, figsize=(12, 1.2 + 0.28 * sum(heights) + 0.5 * len(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for (col, vals), (left, right) in zip(per.items(), axes):
        names = [str(v)[:48] for v in vals]
        left.barh(names, [v["kept"] for v in vals.values()], color="tab:blue")
        right.barh(names, [v["acceptance"] for v in vals.values()], color="tab:green")
        left.set_title(f"{col}: documents in the corpus{shown[col]}", fontsize=9, loc="left")
        right.set_title(f"{col}: acceptance (clean / prompts)", fontsize=9, loc="left")
        right.set_xlim(0, max(0.05, max(v["acceptance"] for v in vals.values()) * 1.1))
        right.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        for ax in (left, right):
            ax.invert_yaxis()
            ax.tick_params(labelsize=7)
        right.set_yticklabels([])
    figs[PLOTS["axes"]] = fig
    # The 20 most common openers, in the corpus and among the rejected texts.
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, (name, m) in zip(axes, t.items()):
        top = m["openers_top20"]
        ax.barh([o or "(empty)" for o, _ in top], [c / m["documents"] for _, c in top], color="tab:orange")
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.tick_params(labelsize=7)
        ax.set_title(f"{name}: top openers (share of {m['documents']:,} documents)", fontsize=9, loc="left")
    figs[PLOTS["openers"]] = fig
    # distinct-n, corpus against rejected.
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, (name, m) in enumerate(t.items()):
        ax.bar([n + 0.4 * k - 0.2 for n in (1, 2, 3, 4)], [m[f"distinct_{n}"] or 0 for n in (1, 2, 3, 4)], width=0.4, label=name)
    ax.set_xticks([1, 2, 3, 4], ["distinct-1", "distinct-2", "distinct-3", "distinct-4"])
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("distinct word n-grams / all word n-grams", fontsize=9)
    figs[PLOTS["distinct"]] = fig
    try:
        for name, fig in figs.items():
            fig.tight_layout()
            with atomic_path(out / name) as tmp:
                fig.savefig(tmp, dpi=90, format="png")
    finally:
        for fig in figs.values():
            plt.close(fig)


def report_md(s: dict) -> str:
    t = s["timings_s"]
    timing = _table([(k, f"{v:,.1f}") for k, v in sorted(t.items())], ("phase", "seconds"))
    status = (
        f"complete: {s['tokens']['corpus']:,} tokens ≥ {s['target_tokens']:,} (last document `{s['last_id']}`)"
        if s["complete"]
        else f"incomplete: {s['tokens']['corpus']:,} of {s['target_tokens']:,} tokens"
    )
    contaminated = "\n".join(f"- `{k}`: {', '.join(v)}" for k, v in s["contaminated_ids"].items()) or "none"
    axes = "\n".join(
        f"- **{a}**: " + ", ".join(f"{k} {v:,}" for k, v in list(counts.items())[:MAX_VALUES])
        + (f", and {len(counts) - MAX_VALUES:,} more values" if len(counts) > MAX_VALUES else "")
        for a, counts in s["diversity"]["axes"].items()
    )
    return f"""# Build report: {s['recipe']} ({s['recipe_hash']})

Status: {status}.

## Counts

{_counts_section(s)}

Acceptance (kept / prompts): {s['rates']['acceptance']:.1%}; tokens kept per prompt: {s['rates']['clean_tokens_per_prompt']:,.1f}.

## Rejections

{_rejections(s)}

## Contaminated documents

{contaminated}

## Diversity of the corpus

{s['diversity']['leaves_covered']:,}/{s['diversity']['leaves_total']:,} {_primary(s['diversity'])} covered.

{axes}

### Kept documents and acceptance per value of each axis

![kept documents and acceptance per axis value]({PLOTS['axes']})

### Text metrics

Definitions: `corpus diversity --help` (`corpus/diversity.py`). The near-duplicate rate is over the
gate-accepted texts, before dedup removed them.

{_text_table(s['text_diversity'])}

![distinct n-grams]({PLOTS['distinct']})

Most common openers in the corpus:

{_openers(s['text_diversity'])}

![top openers]({PLOTS['openers']})

## Timings

{timing}
"""
