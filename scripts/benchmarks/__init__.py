"""The benchmarks behind ``scripts/bench.py``, one module each; ``common`` holds what they share.

    training       the training step: tinygpt per backend vs PyTorch eager (default; --gpu)
    sampling       tokens/s with and without the KV cache (printed with the training table)
    data_parallel  one process vs mpiexec -n 2 vs PyTorch, tokens/s (--data-parallel)
    projection     all-reduce bytes and time at 8-512 ranks (--projection)
    gpt2_sampling  GPT-2 (124M) greedy sampling vs transformers (--gpt2)
    gpt2_load      peak memory of loading GPT-2 (124M) weights vs transformers (--gpt2-load)
    data           tinygpt prepare vs tokenizers (--data); training on a prepared dataset (--data-train DIR)

Every measurement runs in a process of its own: ``bench.py --worker KIND ...`` calls the
module's ``WORKERS[KIND]`` and prints its JSON result. Informational only: nothing here gates CI.
"""
