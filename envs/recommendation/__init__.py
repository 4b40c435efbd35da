"""Recommendation session environment: RecSim interest-evolution users, items as text.

Public surface:

* :class:`RecommendationEnv` (registered as ``rlagent/Recommendation-v0``) and its planning
  state :class:`RecState`.
* Catalogues: :class:`Catalog`, :func:`generate_catalog`, :func:`load_catalog`,
  :class:`CatalogError`.
* Live sessions: :class:`LiveRecommendation` (``env.live_session()``), :class:`LiveInputError`.
* The user model: :class:`UserConfig`, :data:`DYNAMICS`, :class:`SessionUser`.
* Baselines: :class:`RandomPolicy`, :class:`PopularityPolicy`, :class:`MyopicPolicy`,
  :class:`OracleGreedyPolicy`, :class:`BestTopicPolicy`.
"""

from envs.recommendation.baselines import (
    BestTopicPolicy,
    MyopicPolicy,
    OracleGreedyPolicy,
    PopularityPolicy,
    RandomPolicy,
)
from envs.recommendation.catalog import (
    Catalog,
    CatalogError,
    generate_catalog,
    load_catalog,
    topic_quality_means,
)
from envs.recommendation.env import (
    InvalidSlateError,
    RecommendationEnv,
    RecState,
    ResetNeededError,
)
from envs.recommendation.live import LiveInputError, LiveRecommendation
from envs.recommendation.user_model import (
    DYNAMICS,
    RecommendationConfigError,
    SessionUser,
    UserConfig,
)

__all__ = [
    "RecommendationEnv",
    "RecState",
    "LiveRecommendation",
    "LiveInputError",
    "InvalidSlateError",
    "ResetNeededError",
    "RecommendationConfigError",
    "Catalog",
    "CatalogError",
    "generate_catalog",
    "load_catalog",
    "topic_quality_means",
    "UserConfig",
    "DYNAMICS",
    "SessionUser",
    "RandomPolicy",
    "PopularityPolicy",
    "MyopicPolicy",
    "OracleGreedyPolicy",
    "BestTopicPolicy",
]
