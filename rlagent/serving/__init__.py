"""Serving a trained agent: the HTTP app, its pages and the durable interaction log.

See docs/serving.md.
"""

from rlagent.serving.interaction_log import DecisionRecord, InteractionLog  # noqa: F401
from rlagent.serving.log_export import export_minari  # noqa: F401
