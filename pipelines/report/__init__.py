"""The run's reports: report.md (the corpus run's figures, written by the pipeline) and report.html
(every part the output folder holds: corpus, shards, tokenizer, training, fine-tuning, with charts).

`python -m pipelines.report --out out` rebuilds report.html from the output folder alone. The HTML
modules import matplotlib: they are imported on use, not here, so that Ray workers importing
pipelines.corpus do not pay for it."""

from pipelines.report.markdown import write_report

__all__ = ["write_report"]
