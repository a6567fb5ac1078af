"""Language-ID accuracy: `python -m bench.langid DIR`.

DIR holds `<iso639-1>.txt` files, one sentence per line. Each line goes
through the project's language-ID stage (same model, same label
normalisation); prints per-language accuracy and ends with
`macro_accuracy X micro_accuracy Y sentences_per_s Z`. Macro accuracy is the
mean over languages lid.176 supports, as the published figures are.
"""

from __future__ import annotations

import argparse
import os
import time

from stages.base import document_batch
from stages.langid import LanguageId, normalise_lang


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="folder of <iso639-1>.txt files, one sentence per line")
    args = parser.parse_args(argv)
    stage = LanguageId()
    stage.setup()
    supported = {normalise_lang(label.removeprefix("__label__")) for label in stage.model.get_labels()}
    results, total_correct, total, seconds = {}, 0, 0, 0.0
    for name in sorted(os.listdir(args.dir)):
        if not name.endswith(".txt"):
            continue
        lang = normalise_lang(name[:-4])
        with open(os.path.join(args.dir, name), encoding="utf-8") as handle:
            sentences = [line.strip() for line in handle if line.strip()]
        started = time.perf_counter()
        predicted = stage.score(document_batch(sentences))["lang"]
        seconds += time.perf_counter() - started
        correct = sum(p == lang for p in predicted)
        results[lang] = (correct / len(sentences), len(sentences), lang in supported)
        total_correct += correct
        total += len(sentences)
    for lang, (accuracy, n, ok) in sorted(results.items()):
        note = "" if ok else "  (not supported by lid.176)"
        print(f"{lang}\t{accuracy:.4f}\t{n}{note}")
    scored = [acc for acc, _, ok in results.values() if ok]
    print(f"languages {len(results)} supported {len(scored)} sentences {total}")
    print(f"macro_accuracy {sum(scored) / len(scored):.4f} micro_accuracy {total_correct / total:.4f} "
          f"sentences_per_s {total / seconds:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
