"""Monte-Carlo tree search for rlagent: search core, models, evaluators, beliefs and agents."""

from rlagent.planning.agent import MCTSAgent, make_planning_agent
from rlagent.planning.belief import BeliefModel, ParticleBelief, hide, observable_key
from rlagent.planning.config import MCTSConfig, bundled_planner_settings, read_planner_settings
from rlagent.planning.env_model import EnvModel, action_table
from rlagent.planning.evaluators import ConstantEvaluator, RandomRolloutEvaluator
from rlagent.planning.mdp import (
    ExactValueEvaluator,
    TabularMDP,
    branching_mdp,
    lucky_outcome_mdp,
    random_mdp,
)
from rlagent.planning.model import (
    BatchEvaluator,
    Evaluator,
    Model,
    PlanningConfigError,
    PlanningError,
    PlanningStateError,
)
from rlagent.planning.policy_evaluator import PolicyEvaluator
from rlagent.planning.search import MCTS, SearchResult

__all__ = [
    "MCTS",
    "BatchEvaluator",
    "BeliefModel",
    "ConstantEvaluator",
    "EnvModel",
    "Evaluator",
    "ExactValueEvaluator",
    "MCTSAgent",
    "MCTSConfig",
    "Model",
    "ParticleBelief",
    "PlanningConfigError",
    "PlanningError",
    "PlanningStateError",
    "PolicyEvaluator",
    "RandomRolloutEvaluator",
    "SearchResult",
    "TabularMDP",
    "action_table",
    "branching_mdp",
    "bundled_planner_settings",
    "hide",
    "lucky_outcome_mdp",
    "make_planning_agent",
    "observable_key",
    "random_mdp",
    "read_planner_settings",
]
