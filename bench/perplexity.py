"""Perplexity filter: `python -m bench.perplexity [--mb 5] [--transformer]`.

- Throughput: the `perplexity` stage (models/perplexity, configs/corpus.yaml's parameters) in this
  process on one core, batches of 256 documents, on the benchmark mix of bench.pipeline_throughput
  (C4, CCNet, Wikipedia, Chinese Debian Reference; built once under bench/work), with each
  document's `lang` set from its origin (what language ID gives them). MB = 10^6 bytes of document
  text, the whole text, although only the first `max_chars` characters are scored. Goal: >= 1 MB/s
  per core.
- Separation: held-out reference text (the Wikipedia articles the English model was not trained
  on, cut into chunks of 200-1500 characters as pipelines.quality_model cuts them) against raw web
  text (the sample's C4 and CCNet documents, cut the same way), 400 chunks of each (seeded sample),
  and two kinds of junk written here (navigation/cookie boilerplate, keyword spam): ROC AUC of
  "reference scores better than web", and the median score of each set.
- `--transformer`: the same separation and the scoring speed of the alternative, a tiny byte-level
  model from our trainer (configs/train/shakespeare_char.yaml: 4 layers, width 128, context 64)
  trained for `--steps` steps on the same Wikipedia training articles; its score is bits per byte
  over non-overlapping 64-byte windows of each document's prefix.

Ends with `ngram_mb_per_s X` (and `transformer_mb_per_s Y`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter

import numpy as np

from bench.inputs import DEFAULT_SHARED, MB, REPO, WORK
from bench.markdown import table
from bench.pipeline_throughput import build_input
from pipelines.config import load_config
from pipelines.perplexity_model import load_config as load_model_config
from pipelines.quality_model import chunks, documents, heldout, roc_auc
from stages import build_stage
from stages.base import document_batch
from stages.perplexity import Perplexity, line_units

LANG_OF_ORIGIN = {"c4": "en", "ccnet": "en", "wikipedia": "en", "zh": "zh"}
BATCH = 256
MAX_CHUNKS = 400  # per set (a seeded sample): the transformer scores a few kB/s on a loaded CPU
# Junk no filter before this one may have removed, written for the separation figures.
BOILERPLATE = [
    "Home | About Us | Products | Services | Blog | Contact Us\nSearch this site\nSkip to main content",
    "We use cookies to improve your experience on our website. By continuing to browse you agree to our "
    "use of cookies. Accept Decline Learn more about our Privacy Policy and Terms of Service",
    "Copyright 2021 All Rights Reserved. Powered by WordPress. Theme by Themeisle.\nBack to top",
    "Login | Register | My Account | Wishlist (0) | Cart (0) | Checkout\nFree shipping on orders over $50",
    "Share this: Facebook Twitter Pinterest LinkedIn Email Print\nLike this: Like Loading...\nRelated posts",
    "Previous post Next post\nLeave a Reply Cancel reply\nYour email address will not be published. "
    "Required fields are marked * Comment Name * Email * Website\nPost Comment",
]
SPAM = [
    "cheap replica watches buy cheap replica watches online best replica watches rolex replica omega replica "
    "discount watches free shipping watches sale",
    "best essay writing service cheap essay writing service buy essay online essay writer essay help "
    "write my essay cheap custom essay writing",
    "casino online casino bonus free spins no deposit casino best online casino real money casino slots "
    "jackpot casino bonus codes",
    "weight loss pills fast weight loss diet pills buy weight loss pills online cheap diet pills lose "
    "weight fast best diet pills",
    "payday loans online fast payday loans no credit check payday loans bad credit instant payday loans "
    "cash advance loans online",
    "seo services cheap seo services best seo company seo agency seo expert backlinks buy backlinks cheap "
    "backlinks high quality backlinks",
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mix(manifest: dict) -> list[tuple[str, str]]:
    """(lang, text) of every document of the benchmark input."""
    out = []
    for path in manifest["files"]:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                out.append((LANG_OF_ORIGIN[record["origin"]], record["text"]))
    return out


def configured_stage() -> Perplexity:
    """The stage as configs/corpus.yaml (what `make corpus` runs) configures it."""
    config = load_config(os.path.join(REPO, "configs", "corpus.yaml"))
    stage = build_stage("perplexity", next(s.params for s in config.stages if s.name == "perplexity"))
    stage.setup()
    return stage


def batch(texts: list[str], lang: str):
    import pyarrow as pa

    return document_batch(texts, ["web"] * len(texts)).append_column("lang", pa.array([lang] * len(texts)))


def throughput(stage: Perplexity, docs: list[tuple[str, str]]) -> tuple[list[list], float]:
    """Rows (language, MB, MB scored, CPU seconds, MB/s) of the stage on `docs`, one core, and the
    total MB/s. Each language's first batch is run once untimed (tables built on first use)."""
    seconds, megabytes, scored = Counter(), Counter(), Counter()
    for lang in sorted({lang for lang, _ in docs}):
        texts = [t for doc_lang, t in docs if doc_lang == lang]
        stage.process(batch(texts[:BATCH], lang))
        started = time.process_time()
        for start in range(0, len(texts), BATCH):
            chunk = texts[start : start + BATCH]
            stage.process(batch(chunk, lang))
        seconds[lang] = time.process_time() - started
        megabytes[lang] = sum(len(t.encode()) for t in texts) / MB
        scored[lang] = sum(len(t[: stage.params.max_chars].encode()) for t in texts) / MB
    seconds["all"], megabytes["all"], scored["all"] = (sum(c.values()) for c in (seconds, megabytes, scored))
    rows = [
        [
            lang,
            f"{megabytes[lang]:.1f}",
            f"{scored[lang]:.1f}",
            f"{seconds[lang]:.2f}",
            f"{megabytes[lang] / seconds[lang]:.2f}",
        ]
        for lang in seconds
    ]
    total = megabytes["all"] / seconds["all"]
    return rows, total


def separation_sets() -> tuple[dict[str, list[str]], list[str]]:
    """The texts to separate, by set, and the English model's training articles."""
    config = load_model_config(os.path.join(REPO, "configs", "perplexity_model.yaml"))

    def texts(kind: str) -> list[tuple[str, str]]:
        return [
            pair
            for i, spec in enumerate(config.languages["en"][kind])
            for pair in documents({"paths": [os.path.join(REPO, p) for p in spec["paths"]]}, f"en-{kind}-{i}")
        ]

    reference = texts("reference")
    held = [t for doc_id, t in reference if heldout(doc_id, config.heldout_fraction, config.seed)]
    trained = [t for doc_id, t in reference if not heldout(doc_id, config.heldout_fraction, config.seed)]
    rng = random.Random(0)
    sets = {
        "wikipedia (held out)": [c for t in held for c in chunks(t, 200, 1500)],
        "web (C4, CCNet)": [c for _, t in texts("web") for c in chunks(t, 200, 1500)],
    }
    sets = {label: rng.sample(texts_, min(len(texts_), MAX_CHUNKS)) for label, texts_ in sets.items()}
    return {**sets, "boilerplate": BOILERPLATE, "keyword spam": SPAM}, trained


def separation(name: str, score, sets: dict[str, list[str]]) -> list:
    """One table row: AUC of reference vs web (lower score = more reference-like), medians."""
    scores = {label: score(texts) for label, texts in sets.items()}
    reference, web = scores["wikipedia (held out)"], scores["web (C4, CCNet)"]
    auc = roc_auc([-s for s in reference], [-s for s in web])
    return [name, f"{auc:.3f}"] + [f"{np.median(s):.3g}" for s in scores.values()]


def train_transformer(texts: list[str], steps: int) -> str:
    """A tiny byte-level model of our trainer on `texts`; returns its folder."""
    folder = os.path.join(WORK, f"perplexity-transformer-{steps}")
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return folder
    os.makedirs(folder, exist_ok=True)
    text_file = os.path.join(folder, "train.txt")
    with open(text_file, "w", encoding="utf-8") as handle:
        handle.write("\n\n".join(texts))
    command = [sys.executable, "-m", "train.pretrain", "--config", "configs/train/shakespeare_char.yaml"]
    for setting in (f"data.text={text_file}", f"checkpoint.dir={folder}", f"train.max_steps={steps}", "eval.every=0"):
        command += ["--set", setting]
    log(f"training the byte-level transformer ({steps} steps): {' '.join(command)}")
    subprocess.run(command, cwd=REPO, check=True, stdout=sys.stderr)
    return folder


def transformer_scorer(folder: str, max_bytes: int):
    """Bits per byte of each text's prefix, in non-overlapping windows of the model's context."""
    import torch

    from train.checkpoint import load_model

    model = load_model(folder).eval()
    window = model.config.max_seq_len

    def score(texts: list[str]) -> list[float]:
        out = []
        with torch.inference_mode():
            for text in texts:
                data = np.frombuffer(text.encode()[:max_bytes], np.uint8).astype(np.int64)
                n = (len(data) - 1) // window * window or len(data) - 1
                inputs = torch.from_numpy(data[:n]).view(-1, min(window, n))
                targets = torch.from_numpy(data[1 : n + 1]).view_as(inputs)
                logits, _ = model(inputs)
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
                out.append(float(loss) / np.log(2))
        return out

    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.perplexity", description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5, help="benchmark mix size (default %(default)s)")
    parser.add_argument("--shared", default=DEFAULT_SHARED)
    parser.add_argument("--transformer", action="store_true", help="also the tiny transformer alternative")
    parser.add_argument("--steps", type=int, default=300, help="its training steps (default %(default)s)")
    args = parser.parse_args(argv)

    stage = configured_stage()
    docs = mix(build_input(args.shared, args.mb, 1))
    rows, ngram_speed = throughput(stage, docs)
    print(f"### Throughput: the n-gram stage, one core ({len(docs)} documents)\n")
    print(table(["language", "MB", "MB scored (prefix)", "CPU s", "MB/s"], rows))

    sets, trained = separation_sets()
    labels = list(sets)

    def ngram_score(texts: list[str]) -> list[float]:
        return stage.models["en"].perplexities([line_units(t[: stage.params.max_chars], "en") for t in texts])

    results = [separation("n-gram (perplexity)", ngram_score, sets)]
    summary = f"ngram_mb_per_s {ngram_speed:.2f}"
    if args.transformer:
        score = transformer_scorer(train_transformer(trained, args.steps), max_bytes=stage.params.max_chars)
        results.append(separation("byte transformer (bits per byte)", score, sets))
        sample = [t for _, t in docs if len(t) > 2000][:20]
        started = time.process_time()
        score(sample)
        seconds = time.process_time() - started
        scored = sum(min(len(t.encode()), stage.params.max_chars) for t in sample) / MB
        summary += f" transformer_mb_per_s {scored / seconds:.4f}"
    print(f"\n### Separation (sets of {', '.join(f'{label}: {len(sets[label])}' for label in labels)})\n")
    print(table(["model", "AUC reference vs web"] + [f"median: {label}" for label in labels], results))
    print(f"\n{summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
