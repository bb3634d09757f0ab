"""The ``specbench`` toolkit: build and check spec suites the way the SpecBench paper built its own.

The paper's pipeline, one module per step, each driven by a subcommand of the ``specbench`` console
script (:mod:`pytest_specbench.cli`)::

    download    fetch SpecBench, verified against the checksums in datasets/   (download.py)
    synthesize  ask a model for prompts that tempt a violation of each safety spec (synthesize.py)
    dedupe      the paper's Algorithm 1 on sentence embeddings                  (dedupe.py)
    attack      rewrite unsafe prompts with jailbreak tactics, meaning verified (attack.py)
    annotate    Label Studio tasks for human labels, and their import           (annotate.py)
    agree       judge vs judge or judge vs humans: kappa, |dSAR|, rank agreement (agree.py)

Nothing here is imported by the pytest plugin at load time; numpy, scipy, scikit-learn, llama.cpp
(the dedupe embedder, :mod:`.embedders`) and tqdm are imported inside the functions that need them, so a
plain ``pytest`` run never pays for them. Shared plumbing lives in :mod:`.store` (resumable JSONL output,
atomic writes, prompt files), :mod:`.calls` (cached model calls with a progress bar) and
:mod:`.errors`.
"""
