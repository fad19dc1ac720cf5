# Memory (mem_mb) and runtime (minutes) of the CPU stages' jobs: the scale benchmark's fit
# (intervene.resources, src/intervene/resources_fit.json) at the batches a job reads and the data's
# batch shape, times the Slurm attempt. Evaluated when a job is scheduled, never at parse time.
import functools


@functools.cache
def data_shape():
    """(global batch size, sequence length) of the data: the toy world's from the config, else
    the OLMo train config's (read once)."""
    if uses_world():
        from intervene.world.spec import WorldSpec

        w = config.get("world") or {}
        return (
            w.get("global_batch_size", WorldSpec.global_batch_size),
            w.get("seq_len", WorldSpec.seq_len),
        )
    from intervene.olmo import load_train_config

    spec = load_train_config(config["data"]["train_config"])
    return spec.global_batch_size, spec.seq_len


def group_batches(group):
    """Batches of group `group` (001, ...) inside the decoded window."""
    d = config["decode"]
    per, g = d["batches_per_group"], int(group) - 1
    return max(0, min((g + 1) * per, d["last_batch"]) - max(g * per, d["first_batch"]))


def job_batches(stage, wc):
    """The batches a job of `stage` reads, which its time and memory grow with: its group, the
    groups of the windows an intervention reads, or (memmap) the rewritten window."""
    if hasattr(wc, "group"):
        return group_batches(wc.group)
    if stage == "memmap":
        return config["train"]["save_interval"]
    if stage == "bm25_window":
        groups = window_groups(*mapping_window(wc.name, wc.side))
    elif stage == "mapping":
        groups = {
            g
            for side in ("target", "source")
            for g in window_groups(*mapping_window(wc.name, side))
        }
    else:  # select, swap
        groups = intervention_groups(wc.name)
    return sum(group_batches(g) for g in groups)


def fitted(stage, key):
    """A `resources:` callable: `mem_mb` or `runtime` of a `stage` job at its attempt."""

    def get(wildcards, attempt):
        from intervene.resources import estimate

        mem, runtime = estimate(
            stage, job_batches(stage, wildcards), *data_shape(), attempt
        )
        return mem if key == "mem_mb" else runtime

    return get
