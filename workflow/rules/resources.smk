# Memory (mem_mb) and runtime (minutes) of the CPU stages' jobs: the scale benchmark's fit
# (intervene.resources, src/intervene/resources_fit.json) at the batches a job reads and the data's
# batch shape, times the Slurm attempt. Evaluated when a job is scheduled, never at parse time.
import functools


@functools.cache
def data_shape():
    """(global batch size, sequence length) of the data (the OLMo train config is read once)."""
    return layout.data_shape(config)


def job_groups(stage, wc):
    """The group folders a job of `stage` reads: its group, or the groups of the windows an
    intervention reads."""
    if hasattr(wc, "group"):
        return [wc.group]
    if stage == "bm25_window":
        return layout.side_groups(config, wc.name, [wc.side])
    if stage == "mapping":
        return layout.side_groups(config, wc.name, ["target", "source"])
    return layout.intervention_groups(config, wc.name)  # select, swap


def job_batches(stage, wc):
    """The batches a job of `stage` reads, which its time and memory grow with: those of its
    groups inside the decoded window, or (memmap) the rewritten window."""
    if stage == "memmap":
        return config["train"]["save_interval"]
    return sum(layout.decoded_batch_count(config, g) for g in job_groups(stage, wc))


def fitted(stage, key):
    """A `resources:` callable: `mem_mb` or `runtime` of a `stage` job at its attempt."""

    def get(wildcards, attempt):
        from intervene.resources import estimate

        mem, runtime = estimate(
            stage, job_batches(stage, wildcards), *data_shape(), attempt
        )
        return mem if key == "mem_mb" else runtime

    return get
