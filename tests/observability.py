"""The label values the metrics documentation promises, written out independently of the code's
own tuples, so a test notices when either changes without the other."""

KIND_VALUES = {"sync", "stream", "async_task", "batch_chunk"}
PATH_VALUES = {"direct", "server", "channel"}
OUTCOME_VALUES = {"success", "failure", "refused", "cancelled"}
