# Shared by every rule: the config check, the wildcard constraints, `W` and the default target's
# lists. `W` (intervene.workflow_inputs.Inputs) holds the rules' input, param and resource functions,
# bound to the resolved config (intervene.settings: every default filled, so rules index the config
# and write no default); rules name them as W.select_inputs, W.fitted("search", "mem_mb"), ...
# Where things are: intervene.layout; what a job runs with: intervene.workflow_args.
# Top-level code stays cheap: it reads the config only, never the data.
import functools
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from intervene import layout
from intervene import workflow_args as wargs
from intervene.config_check import ConfigError, check_config
from intervene.layout import (
    BATCHES_DIR,
    DATA_DIR,
    DOC_INFO_DIR,
    LOCAL_TRAIN_CONFIG,
    TRAIN_DIR,
    WORLD_DIR,
)
from intervene.settings import SettingsError, resolve_config
from intervene.workflow_inputs import Inputs

validate(config, "../schemas/config.schema.yaml")
# what the schema cannot say (checkpoints vs save_interval, windows vs the decoded batches, paths):
# one line naming the key, before any job runs
try:
    check_config(config, schema=workflow.source_path("../schemas/config.schema.yaml"))
    GIVEN = layout.given_sections(config)  # optional stages switch on by presence
    config.update(resolve_config(config))
except (ConfigError, SettingsError) as e:
    raise WorkflowError(f"config: {e}") from None

# the rules' functions; a run of several nodes launches torchrun_node.sh on each under srun
W = Inputs(
    config,
    GIVEN,
    node_script=os.path.join(
        workflow.basedir, "workflow", "scripts", "torchrun_node.sh"
    ),
)


wildcard_constraints:
    group=r"\d{3}",
    shard=r"\d+",


def protect_original(path):
    """The original run's summary, write-protected at full scale (Inputs.protects_original):
    Snakemake then refuses to run the rule again until the file is removed by hand (`chmod u+w`
    and `rm`); the checkpoints stay and the trainer resumes from them."""
    return protected(path) if W.protects_original() else path


# -- the default target's lists (intervene.layout: the stages the config switches on) -----------
doc_info_targets = functools.partial(layout.doc_info_targets, config)
train_targets = functools.partial(layout.train_targets, config)
eval_targets = functools.partial(layout.eval_targets, config, GIVEN)
match_targets = functools.partial(layout.match_targets, config, GIVEN)
intervention_targets = functools.partial(layout.intervention_targets, config, GIVEN)
experiment_targets = functools.partial(layout.experiment_targets, config, GIVEN)
